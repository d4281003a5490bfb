"""testbed trace and capture on real clusters: a probe's path named hop by hop as each mode's
kernel objects carry it, the endpoint kube-proxy chose, the NetworkPolicy that dropped it, the
router between racks; capture's pcap; bad input refused with nothing left behind."""
import glob
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from testbed.host import netns
from testbed.kubeproxy.modes import get_proxy_mode

from .conftest import REPO, TOPO, run_testbed
from .test_manifests import SHOP


def trace(cluster, *args):
    """(exit code, the trace as JSON) of `testbed trace ARGS -o json`."""
    proc = run_testbed("trace", *args, "-o", "json", "--name", cluster.spec.name, timeout=30)
    assert proc.stdout.startswith("{"), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def hops(data, where, direction=None):
    return [h for h in data["hops"] if h["where"] == where and
            (direction is None or h["direction"] == direction)]


def notes(hop_list):
    return [n for h in hop_list for n in h["notes"]]


def encapsulated(data, where):
    """The hop where `where` sent the probe out inside a tunnel."""
    return next(h for h in hops(data, where, "out") if h["outer"])


def check_vxlan(data, state):
    assert "flannel.1" in [h["interface"] for h in hops(data, "node1", "out")]
    wrapped = encapsulated(data, "node1")
    outer = wrapped["outer"]["flow"]
    assert (outer["src"], outer["dst"], outer["dport"]) == \
        (state.nodes["node1"].ip, state.nodes["node2"].ip, 8472)
    assert wrapped["tunnel"]["vni"] == 1 and wrapped["interface"] == "eth0"
    assert any(n.startswith("fdb: ") and f"dst {state.nodes['node2'].ip}" in n
               for n in wrapped["notes"])


def check_host_gw(data, state):
    out = [h for h in hops(data, "node1", "out") if h["interface"] == "eth0"]
    assert out and not out[0]["outer"]
    lease = state.nodes["node2"].lease
    assert f"route: {lease} via {state.nodes['node2'].ip} dev eth0" in notes(out)


def check_udp(data, state):
    assert "flannel0" in [h["interface"] for h in hops(data, "node1", "out")]
    wrapped = encapsulated(data, "node1")
    assert wrapped["tunnel"]["kind"] == "flannel-udp"
    assert wrapped["outer"]["flow"]["sport"] == wrapped["outer"]["flow"]["dport"] == 8285
    assert "flannel0" in [h["interface"] for h in hops(data, "node2", "in")]


def check_bgp(data, state):
    assert hops(data, "node1", "in")[0]["interface"].startswith("cali")
    assert any("proto bird" in n for n in notes(hops(data, "node1", "out")))
    assert hops(data, "node2", "out")[-1]["interface"].startswith("cali")


def check_openflow(data, state):
    entered = notes(hops(data, "node1", "in"))
    assert any(n.startswith("br-int table 0: ") and "in_port=of" in n for n in entered)
    assert any("output:tun0" in n for n in entered)
    assert encapsulated(data, "node1")["outer"]["flow"]["dport"] == 4789
    assert any("in_port=tun0" in n for n in notes(hops(data, "node2", "in")))


@pytest.mark.parametrize("mode, check", [
    ("vxlan", check_vxlan), ("host-gw", check_host_gw), ("udp", check_udp),
    ("bgp", check_bgp), ("openflow", check_openflow)])
def test_a_trace_across_nodes_names_the_modes_own_hops(make_cluster, mode, check):
    cluster = make_cluster("default.yaml", mode)
    code, data = trace(cluster, "node1-pod1", "node2-pod1", "--port", "8080")
    assert code == 0 and data["delivered"], data["verdict"]
    assert data["hops"][0]["where"] == "node1-pod1" and data["hops"][-1]["where"] == \
        "node2-pod1"
    assert "nothing listens on TCP 8080" in data["verdict"]  # answered by a reset
    assert data["reply"][-1]["where"] == "node1-pod1"
    assert data["reply"][0]["packet"]["info"] == "ACK,RST"
    check(data, cluster.state)


NODE_PORT = 30080
NODE_PORT_SERVICE = f"""\
---
apiVersion: v1
kind: Service
metadata: {{name: web-np, namespace: shop}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {NODE_PORT}}}]
"""


@pytest.mark.parametrize("proxy_mode, chain", [("iptables", "iptables KUBE-SVC-"),
                                               ("nftables", "nftables chain endpoint-")])
def test_a_trace_to_a_cluster_ip_names_the_endpoint_kube_proxy_chose(
        make_cluster, require, tmp_path, proxy_mode, chain):
    require(*get_proxy_mode(proxy_mode).needs)
    (tmp_path / "shop.yaml").write_text(SHOP.replace("REPLICAS", "2") + NODE_PORT_SERVICE)
    topo = tmp_path / "t.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() +
                    f"kubeProxy: {{mode: {proxy_mode}}}\nmanifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "vxlan")
    web = {rec.ip for rec in cluster.state.pods.values() if rec.namespace == "shop"}
    code, data = trace(cluster, "node1-pod1", "shop/svc/web")
    assert code == 0 and data["delivered"], data["verdict"]
    endpoint = data["hops"][-1]["packet"]["flow"]
    assert endpoint["dst"] in web and endpoint["dport"] == 8080
    dnat = [n for n in notes(data["hops"]) if n.startswith("DNAT 10.96.")]
    assert len(dnat) == 1 and f"-> {endpoint['dst']}:8080 by kube-proxy: {chain}" in dnat[0]
    assert f"the endpoint {endpoint['dst']}:8080" in data["verdict"]
    # conntrack undid the DNAT on the way back: the client hears the ClusterIP
    assert data["reply"][-1]["packet"]["flow"]["src"] == \
        cluster.state.services["shop/web"].cluster_ip
    assert data["conntrack"]["node1"]["reply"]["src"] == endpoint["dst"]
    # a NodePort of the other node: flannel masquerades the pod (--random-fully: a new source
    # port), node2 DNATs to an endpoint and masquerades again; the trace follows both NATs
    node2 = cluster.state.nodes["node2"].ip
    code, data = trace(cluster, "node1-pod1", node2, "--port", str(NODE_PORT))
    assert code == 0 and data["delivered"], data["verdict"]
    final = data["hops"][-1]["packet"]["flow"]
    assert final["dst"] in web and final["dport"] == 8080
    assert f"the endpoint {final['dst']}:8080" in data["verdict"]
    notes_seen = notes(data["hops"])
    assert any(n.startswith("SNAT 10.244.") for n in notes_seen)
    assert any(n.startswith(f"DNAT {node2}:{NODE_PORT} -> ") for n in notes_seen)
    assert data["reply"][-1]["where"] == "node1-pod1"


DENY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-frontends, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {role: frontend}}
"""


def test_a_denied_connection_ends_dropped_naming_the_policy(make_cluster, tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP.replace("REPLICAS", "2") + "---\n" + DENY)
    topo = tmp_path / "t.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() +
                    "networkPolicy: {enforce: true}\nmanifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "bgp")
    web = {rec.ip: key for key, rec in cluster.state.pods.items() if rec.namespace == "shop"}
    started = time.monotonic()
    code, data = trace(cluster, "node1-pod1", f"{next(iter(web))}", "--port", "8080")
    assert code == 1 and not data["delivered"]
    assert data["probe"]["result"] == "timeout" and data["reply"] == []
    assert "NetworkPolicy drop in" in data["verdict"]
    assert "shop/only-frontends" in data["verdict"] and "no policy allows this ingress" in \
        data["verdict"]
    assert any("isolated by only-frontends" in line for line in data["policy"])
    assert time.monotonic() - started < 30
    code, allowed = trace(cluster, "node1-pod1", "node2-pod1", "--port", "8080")
    assert code == 0 and allowed["delivered"]  # a pod no policy isolates
    # every drop is remembered per connection: get drops and describe netpol name it
    name = cluster.spec.name
    drops = json.loads(run_testbed("get", "drops", "-o", "json", "--name", name,
                                   check=True).stdout)
    denied = web[data["hops"][-1]["packet"]["flow"]["dst"]]
    ours = [d for d in drops if d["pod"] == denied and d["peer"] == "default/node1-pod1"]
    assert len(ours) == 1 and ours[0]["port"] == 8080 and ours[0]["protocol"] == "TCP"
    assert ours[0]["packets"] >= 1 and ours[0]["policies"] == ["shop/only-frontends"]
    assert time.time() - 60 < ours[0]["last"] <= time.time() + 1
    described = run_testbed("describe", "netpol", "only-frontends", "-n", "shop", "--name",
                            name, check=True).stdout
    assert "Denied (the last hour's" in described and "default/node1-pod1" in described
    # and sent to nflog group 1 (inbound), with the endpoint chain's name as its prefix
    node = cluster.state.pods[denied].node
    listing = run_testbed("exec", node, "--name", name, "--", "nft", "list", "table", "ip",
                          "calico", check=True).stdout
    assert re.search(r'log prefix "cali-tw-cali\w+" group 1 counter packets', listing)
    nflog = subprocess.Popen(netns.in_node(cluster.state.nodes[node].pid, [
        "tcpdump", "-i", "nflog:1", "-c", "1", "-n"]), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # listening
        trace(cluster, "node1-pod1", denied, "--port", "8080")
        out, _ = nflog.communicate(timeout=10)
    finally:
        if nflog.poll() is None:
            nflog.kill()
            nflog.wait()
    assert f"> {cluster.state.pods[denied].ip}.8080" in out


@pytest.mark.parametrize("mode", ["vxlan", "bgp"])
def test_a_trace_between_racks_passes_the_router(make_cluster, mode):
    cluster = make_cluster("two-racks.yaml", mode)
    code, data = trace(cluster, "node1-pod1", "node4-pod1", "--protocol", "icmp")
    assert code == 0 and data["delivered"] and data["probe"]["result"] == "answered"
    places = [h["where"] for h in data["hops"]]
    assert places.index("rack1") < places.index("router") < places.index("rack2") < \
        places.index("node4-pod1")
    routed = hops(data, "router", "out")
    assert routed and routed[0]["interface"] == "rack2"
    if mode == "vxlan":  # flannel's vxlan crosses the router inside the tunnel
        assert routed[0]["outer"]["flow"]["dport"] == 8472
    else:  # BIRD taught the router the pods' block
        assert any("proto bird" in n for n in routed[0]["notes"])
    assert [h["where"] for h in data["reply"]][-1] == "node1-pod1"


def trace_leftovers():
    """Temp dirs of traces and tcpdumps writing into them."""
    procs = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                if b"testbed-trace-" in f.read():
                    procs.append(cmdline)
        except OSError:
            continue
    return set(glob.glob("/tmp/testbed-trace-*")) | set(procs)


def test_capture_writes_a_pcap_holding_the_traced_packets(make_cluster, tmp_path):
    cluster = make_cluster("default.yaml", "vxlan")
    pcap_file = tmp_path / "node2.pcap"
    capture = subprocess.Popen([sys.executable, "-m", "testbed.cli", "capture", "node2",
                                "-w", str(pcap_file), "--name", cluster.spec.name, "udp"],
                               cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on any" in capture.stderr.readline() + capture.stderr.readline()
        code, data = trace(cluster, "node1-pod1", "node2-pod1", "--protocol", "udp",
                           "--port", "9")
        assert code == 0
    finally:
        capture.send_signal(signal.SIGINT)
        capture.wait(timeout=10)
    sport = data["hops"][0]["packet"]["flow"]["sport"]
    read = subprocess.run(["tcpdump", "-r", str(pcap_file), "-n"], capture_output=True,
                          text=True, check=True).stdout
    # the probe twice in node2: in VXLAN on eth0 (tcpdump shows the inner packet) and bare
    src, dst = (data[side]["ip"] for side in ("source", "destination"))
    assert read.count(f"{src}.{sport} > {dst}.9: UDP") >= 2, read
    # tcpdump names port 8472 by its IANA owner, OTV; the VNI shows as the instance
    node2 = cluster.state.nodes["node2"].ip
    assert f"{node2}.8472: OTV, flags [I] (0x08), overlay 0, instance 1" in read


def test_bad_input_is_one_line_and_leaves_nothing_behind(make_cluster):
    cluster = make_cluster("default.yaml", "vxlan")
    name = cluster.spec.name
    before = trace_leftovers()
    unknown = run_testbed("trace", "node1-pod1", "node9-pod1", "--name", name)
    assert unknown.returncode == 2 and len(unknown.stderr.splitlines()) == 1
    assert "'node9-pod1'" in unknown.stderr and f"cluster {name}" in unknown.stderr
    other = run_testbed("trace", "node1-pod1", "node2-pod1", "--name", "no-such-cluster")
    assert other.returncode == 2 and "no cluster named 'no-such-cluster'" in other.stderr
    port = run_testbed("trace", "node1-pod1", "node2-pod1", "--port", "70000", "--name", name)
    assert port.returncode == 2 and "70000 is out of range (1 to 65535)" in port.stderr
    svc = run_testbed("capture", "10.96.0.1", "--name", name)
    assert svc.returncode == 2 and "capture runs in a pod's or node's namespace" in svc.stderr
    same = run_testbed("trace", "node1-pod1", "node1-pod1", "--name", name)
    assert same.returncode == 0 and "loopback (lo)" in same.stdout
    nobody = str(ipaddress.ip_network(cluster.state.nodes["node2"].lease)[200])
    code, lost = trace(cluster, "node1-pod1", nobody, "--port", "8080")
    assert code == 1 and lost["hops"][-1]["where"] == "node2"
    assert f"ip route get: {nobody} dev cni0" in lost["verdict"]
    assert f"neighbour {nobody} on cni0: INCOMPLETE (ARP asked" in lost["verdict"]
    # Ctrl-C while the probe waits for an answer that never comes (nothing at that address)
    proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "trace", "node1-pod1",
                             "10.244.9.9", "--name", name], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not trace_leftovers() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert trace_leftovers() - before, "the trace never started its captures"
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "interrupted" in err
    assert trace_leftovers() - before == set()


def check_vxlan_v6(data, state):
    wrapped = encapsulated(data, "node1")
    assert "flannel-v6.1" in [h["interface"] for h in hops(data, "node1", "out")]
    outer = wrapped["outer"]["flow"]  # IPv6 in IPv6, between the nodes' IPv6 addresses
    assert (outer["src"], outer["dst"]) == (state.nodes["node1"].ip_v6,
                                            state.nodes["node3"].ip_v6)


def check_bgp_v6(data, state):
    assert any("proto bird" in n and "fd00:10:244:" in n
               for n in notes(hops(data, "node1", "out")))


def check_openflow_v6(data, state):
    entered = notes(hops(data, "node1", "in"))
    assert any("ipv6_src=" in n or "ipv6" in n for n in entered), entered
    assert any("output:tun0" in n for n in entered)


def check_ebpf_v6(data, state):
    entered = notes(hops(data, "node1", "in"))
    assert any(n.startswith("ipcache fd00:10:244:") and "cilium_vxlan" in n
               for n in entered), entered
    outer = encapsulated(data, "node1")["outer"]["flow"]  # IPv6 over the IPv4 underlay
    assert outer["dst"] == state.nodes["node3"].ip


@pytest.mark.parametrize("mode, topo, check", [
    ("vxlan", "two-racks.yaml", check_vxlan_v6), ("bgp", "two-racks.yaml", check_bgp_v6),
    ("openflow", "default.yaml", check_openflow_v6), ("ebpf", "two-racks.yaml", check_ebpf_v6)])
def test_a_trace_over_ipv6_names_the_modes_ipv6_hops(make_cluster, tmp_path, mode, topo, check):
    if mode == "vxlan":  # with a dual-stack Service to trace to as well
        (tmp_path / "shop.yaml").write_text(SHOP.replace("REPLICAS", "2").replace(
            "  selector: {app: web}\n  ports: [{port: 80",
            "  ipFamilyPolicy: PreferDualStack\n  selector: {app: web}\n  ports: [{port: 80", 1))
        (tmp_path / topo).write_text((TOPO / topo).read_text() + "manifests: [shop.yaml]\n")
        topo = tmp_path / topo
    cluster = make_cluster(topo, mode, ip_family="dual")
    far = "node2-pod1" if mode == "openflow" else "node3-pod1"
    code, data = trace(cluster, "node1-pod1", far, "--port", "8080", "--family", "ipv6")
    assert code == 0 and data["delivered"], data["verdict"]
    first = data["hops"][0]["packet"]["flow"]
    assert ipaddress.ip_address(first["src"]).version == 6
    assert first["dst"] == cluster.state.pods[f"default/{far}"].ips[1]
    assert data["reply"][0]["packet"]["info"] == "ACK,RST"
    check(data, cluster.state)
    if mode == "vxlan":  # an IPv6 ClusterIP: the DNAT named by its ip6tables chains
        code, data = trace(cluster, "node1-pod1", "shop/svc/web", "--family", "ipv6")
        assert code == 0, data["verdict"]
        assert data["destination"]["ip"].startswith("fd00:10:96::")
        dnat = [n for n in notes(data["hops"]) if n.startswith("DNAT [fd00:10:96::")]
        assert dnat and "KUBE-SEP-" in dnat[0], notes(data["hops"])
