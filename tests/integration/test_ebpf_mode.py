"""The ebpf mode's kernel objects and behaviour: Cilium's devices and programs, no bridge and no
kube-proxy rules, tunnel routing across racks with the identity in the VNI, the maps
`testbed bpf` shows, and pins that go with the cluster."""
import json
import os
import subprocess

from testbed.host import netns
from testbed.modes.ebpf.mode import pin_dir

from .conftest import TOPO, in_pod, pod, run_testbed
from .test_connectivity import full_matrix
from .test_manifests import DNS, curl

SHOP = DNS.replace("REPLICAS", "2")  # Deployment shop/web, Services web (ClusterIP) and others

def links(node, kind=None):
    return {link["ifname"]: link for link in node.ns.ip_json("link", "show")
            if kind is None or link.get("linkinfo", {}).get("info_kind") == kind}


def tc_programs(node, dev, direction):
    """The names of the BPF programs attached to a device's hook."""
    out = node.ns.run("tc", "filter", "show", "dev", dev, direction)
    return [line.split()[line.split().index("name") + 1] for line in out.splitlines()
            if " bpf " in line and " name " in line]


def test_native_routing_builds_cilium_s_objects_and_no_bridge(make_cluster, tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP)
    topo = tmp_path / "services.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "manifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "ebpf")
    node = cluster.nodes["node1"]
    veths = links(node, "veth")
    assert "cilium_host" in veths and "cilium_net" in veths
    assert not links(node, "bridge") and "cilium_vxlan" not in links(node)
    host = json.loads(node.ns.run("ip", "-j", "-4", "addr", "show", "dev", "cilium_host"))
    assert host[0]["addr_info"][0]["local"] == "10.244.0.1"
    assert tc_programs(node, "eth0", "ingress") == ["cil_from_netdev"]
    assert tc_programs(node, "cilium_host", "egress") == ["cil_from_host"]
    for rec in (r for r in cluster.state.pods.values() if r.node == "node1"):
        lxc = rec.result["interfaces"][0]["name"]
        assert lxc.startswith("lxc") and len(lxc) == 15
        # the kernel keeps a program's first 15 characters
        assert tc_programs(node, lxc, "ingress") == ["cil_from_container"[:15]]
        # the pod: a /32 and a default route via the router address
        assert "default via 10.244.0.1 dev eth0" in netns.run(
            netns.in_pod(rec.netns, ["ip", "route"]))
    # autoDirectNodeRoutes: the peer's pod CIDR via the peer
    assert "10.244.1.0/24 via 192.168.1.12 dev eth0" in node.ns.run("ip", "route")
    # kube-proxy replaced: Services answer, and no packet-filter rule of kube-proxy exists
    answers = {curl(pod(cluster, "node1-pod1").netns, "http://web.shop/hostname")
               for _ in range(12)}
    assert answers == {r.name for r in cluster.state.pods.values() if r.owner == "shop/web"}
    # a pod that reaches itself through its Service is seen from Cilium's 169.254.42.1
    web = next(r for r in cluster.state.pods.values() if r.owner == "shop/web")
    seen = {curl(web.netns, "http://web.shop/clientip").split(":")[0] for _ in range(20)}
    assert seen == {web.ip, "169.254.42.1"}, seen
    assert "KUBE-" not in node.ns.run("iptables-save")
    assert "kube-proxy" not in node.ns.run("nft", "list", "tables")
    # the programs and maps are pinned while the cluster is up
    pins = pin_dir(cluster.spec.name, "node1")
    assert set(os.listdir(f"{pins}/progs")) == {"cil_from_container", "cil_from_netdev",
                                                "cil_from_overlay", "cil_from_host"}
    assert "cilium_lb4_services_v2" in os.listdir(f"{pins}/maps")


def test_tunnel_routing_reaches_every_pod_across_racks_with_the_identity_in_the_vni(
        make_cluster):
    cluster = make_cluster("two-racks.yaml", "ebpf")  # which says ebpf: {routing: tunnel}
    assert cluster.state.pod_mtu == 1450
    node = cluster.nodes["node1"]
    vxlan = links(node, "vxlan")["cilium_vxlan"]["linkinfo"]["info_data"]
    assert vxlan.get("external") and vxlan["port"] == 8472
    assert tc_programs(node, "cilium_vxlan", "ingress") == ["cil_from_overlay"[:15]]
    assert full_matrix(cluster.state) == []
    # a packet of node1-pod1 to a pod of the other rack carries node1-pod1's identity
    capture = subprocess.Popen(node.ns.argv(
        "tcpdump", "-l", "-nn", "-T", "vxlan", "-c", "1", "-i", "eth0", "udp", "port", "8472",
        "and", "src", "host", str(node.ip.ip)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the capture runs once tcpdump says so (its second line; the first says -v is off)
    assert "listening on" in capture.stderr.readline() + capture.stderr.readline()
    subprocess.run(in_pod(cluster, "node1-pod1", ["ping", "-c1", "-W2",
                                                  pod(cluster, "node4-pod1").ip]))
    line = capture.communicate(timeout=10)[0]
    table = run_testbed("bpf", "node1", "--name", cluster.spec.name, check=True).stdout
    identity = next(row.split()[2] for row in table.splitlines()
                    if row.startswith(pod(cluster, "node1-pod1").ip + " "))
    assert f"vni {identity}" in line, (line, identity)


def test_testbed_bpf_shows_the_maps_and_counts_what_the_programs_did(make_cluster, tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP)
    topo = tmp_path / "services.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "manifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "ebpf")
    client = pod(cluster, "node1-pod1")
    for _ in range(4):
        curl(client.netns, "http://web.shop/hostname")
    name = cluster.spec.name
    out = run_testbed("bpf", "node1", "--name", name, check=True).stdout
    web = cluster.state.services["shop/web"].cluster_ip
    backends = sorted(f"{r.ip}:8080" for r in cluster.state.pods.values()
                      if r.owner == "shop/web")
    row = next(line for line in out.splitlines() if line.startswith(f"{web}:80/tcp"))
    assert "shop/web:http (ClusterIP)" in row and all(b in row for b in backends)
    assert f"{client.ip}   default/node1-pod1" in out
    assert "pod CIDR of node2" in out
    counted = out.split("# counters")[1].splitlines()
    counters = {tuple(line.split()[:2]): int(line.split()[-2]) for line in counted
                if line.startswith("cil_from_container ")}
    assert counters[("cil_from_container", "lb")] >= 4
    assert counters[("cil_from_container", "to-endpoint")] > 0
    # trace tells what the programs decided, from the maps
    trace = run_testbed("trace", "node1-pod1", "shop/svc/web", "--name", name, check=True).stdout
    assert "cil_from_container on lxc" in trace
    assert "by the datapath's BPF service maps" in trace and "DELIVERED" in trace
    assert "bpf_redirect_peer into its namespace" in trace
    refused = run_testbed("bpf", "node9", "--name", name)
    assert refused.returncode != 0 and "no node 'node9'" in refused.stderr


def test_pins_are_gone_after_down(require):
    require("bpftool", "bpf/datapath.o", "cni/testbed-cilium")
    from .conftest import unique_name
    name = unique_name()
    run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "ebpf", "--no-cli",
                "--name", name, check=True)
    try:
        assert os.path.isdir(pin_dir(name, "node2") + "/maps")
        shown = netns.run(["bpftool", "map", "show", "pinned",
                           pin_dir(name, "node2") + "/maps/cilium_lxc"])
        assert "cilium_lxc" in shown
    finally:
        run_testbed("down", "--name", name, check=True)
    assert not os.path.exists(pin_dir(name, "node2").rsplit("/", 1)[0])
