"""Dual-stack clusters (`ipFamily: dual`), checked as upstream's e2e dual_stack.go checks a
cluster: every pod has two addresses of different families, and pods reach each other over
each family on the same node, across nodes and across racks; the mode's IPv6 kernel objects
are those of the real plugin."""
import ipaddress
import json
import os
import subprocess

import pytest

from testbed import manifests
from testbed.api import apply
from testbed.cli.objects import read_drops
from testbed.host import netns

from .conftest import TOPO, pod, transfer
from .test_connectivity import full_matrix_over


def families_of(record):
    return [ipaddress.ip_address(ip).version for ip in record.ips]


def in_node(cluster, node, *argv):
    return cluster.nodes[node].ns.run(*argv)


def test_vxlan_dual_stack_across_racks(make_cluster):
    cluster = make_cluster("two-racks.yaml", "vxlan", ip_family="dual")
    state = cluster.state
    # every pod: two addresses, IPv4 then IPv6, both on eth0 and in its lease of each family
    for key, record in state.pods.items():
        assert families_of(record) == [4, 6], key
        shown = json.loads(netns.run(netns.in_pod(record.netns, ["ip", "-j", "addr", "show",
                                                                 "dev", "eth0"])))
        on_eth0 = {a["local"] for a in shown[0]["addr_info"] if a["scope"] == "global"}
        assert on_eth0 == set(record.ips), key
        hosts = netns.run(netns.in_pod(record.netns, ["cat", "/etc/hosts"]))
        assert hosts.startswith("# Kubernetes-managed hosts file.")
        assert [line.split("\t")[0] for line in hosts.splitlines()[-2:]] == record.ips
        lease_v4, lease_v6 = state.nodes[record.node].lease.split(",")
        assert ipaddress.ip_address(record.ips[1]) in ipaddress.ip_network(lease_v6)
        assert ipaddress.ip_address(record.ips[0]) in ipaddress.ip_network(lease_v4)
    # over each family: every pod to every pod (same node, other node, other rack), ping, TCP
    assert full_matrix_over(state, family=6) == []
    assert full_matrix_over(state, family=4) == []  # the IPv4 side as before
    # a transfer larger than the pod MTU crosses the IPv6 tunnel, byte-exact (path MTU
    # discovery through flannel-v6.1, whose MTU is 20 bytes under the pods')
    assert transfer(cluster, 4 << 20, "node1-pod1", "node3-pod1", family=6)

    # flannel's IPv6 objects on node1, towards node3 (the other rack)
    node1, node3 = cluster.nodes["node1"], cluster.nodes["node3"]
    link = json.loads(in_node(cluster, "node1", "ip", "-j", "-d", "link", "show",
                              "flannel-v6.1"))[0]
    vxlan = link["linkinfo"]["info_data"]
    assert (vxlan["id"], vxlan["port"], vxlan["local6"]) == (1, 8472, str(node1.ip_v6.ip))
    assert link["mtu"] == 1500 - 70 and not vxlan.get("learning")
    addresses = in_node(cluster, "node1", "ip", "-6", "addr", "show", "dev", "flannel-v6.1")
    assert f"{node1.lease_v6.network_address}/128" in addresses
    routes = in_node(cluster, "node1", "ip", "-6", "route", "show", str(node3.lease_v6))
    assert f"via {node3.lease_v6.network_address} dev flannel-v6.1" in routes
    assert "onlink" in routes
    neigh = in_node(cluster, "node1", "ip", "-6", "neigh", "show", "dev", "flannel-v6.1")
    mac = node3.facts["vtep_mac_v6"]
    assert f"{node3.lease_v6.network_address} lladdr {mac} PERMANENT" in neigh
    fdb = in_node(cluster, "node1", "bridge", "fdb", "show", "dev", "flannel-v6.1")
    assert f"{mac} dst {node3.ip_v6.ip} self permanent" in fdb
    env = open(node1.facts["subnet_env"]).read()
    assert f"FLANNEL_IPV6_NETWORK={cluster.spec.pod_cidr_v6}" in env
    assert f"FLANNEL_IPV6_SUBNET={node1.lease_v6[1]}/64" in env
    rules = in_node(cluster, "node1", "ip6tables-save")
    assert f"-A FLANNEL-POSTRTG -s {cluster.spec.pod_cidr_v6} ! -d ff00::/8" in rules
    # the IPv4 side is untouched by the IPv6 one
    assert "flannel.1" in in_node(cluster, "node1", "ip", "-4", "route", "show",
                                  str(node3.lease))


def test_host_gw_dual_stack(make_cluster):
    cluster = make_cluster("default.yaml", "host-gw", ip_family="dual")
    node2 = cluster.nodes["node2"]
    routes = in_node(cluster, "node1", "ip", "-6", "route", "show", str(node2.lease_v6))
    assert f"via {node2.ip_v6.ip} dev eth0" in routes
    assert full_matrix_over(cluster.state, family=6) == []
    assert full_matrix_over(cluster.state, family=4) == []
    assert families_of(pod(cluster, "node2-pod2")) == [4, 6]


def test_underlay_has_ipv6_only_in_a_cluster_with_it(make_cluster):
    dual = make_cluster("two-racks.yaml", "vxlan", ip_family="dual")
    # across racks, through the router, over the underlay's IPv6
    node3 = dual.nodes["node3"]
    assert " 0% packet loss" in in_node(dual, "node1", "ping", "-6", "-c1", "-W2",
                                        str(node3.ip_v6.ip))
    assert "fd00:192:168:1::1" in in_node(dual, "node1", "ip", "-6", "route", "show",
                                          "default")
    plain = make_cluster("default.yaml", "vxlan")
    assert in_node(plain, "node1", "sysctl", "-n", "net.ipv6.conf.all.disable_ipv6").strip() == "1"
    assert all(r.ips == [r.ip] for r in plain.state.pods.values())


def test_bgp_dual_stack_across_racks(make_cluster):
    cluster = make_cluster("two-racks.yaml", "bgp", ip_family="dual")
    state = cluster.state
    assert all(families_of(r) == [4, 6] for r in state.pods.values())
    assert full_matrix_over(state, family=6) == []
    assert full_matrix_over(state, family=4) == []  # the IPv4 side as before
    assert transfer(cluster, 1 << 20, "node1-pod1", "node4-pod2", family=6)
    node1, node4 = cluster.nodes["node1"], cluster.nodes["node4"]
    block6 = next(b for b in node1.facts["blocks"] if ":" in b)
    assert block6.endswith("/122")
    assert f"blackhole {block6}" in in_node(cluster, "node1", "ip", "-6", "route", "show",
                                            "proto", "bird")
    # a pod: a /128 on eth0 and the IPv6 default route via the cali side's link-local address
    record = pod(cluster, "node1-pod1")
    routes = netns.run(netns.in_pod(record.netns, ["ip", "-6", "route", "show", "default"]))
    assert "default via fe80::ecee:eeff:feee:eeee dev eth0" in routes
    assert "dev cali" in in_node(cluster, "node1", "ip", "-6", "route", "show",
                                 f"{record.ips[1]}/128")
    # node4's IPv6 block reaches node1 through the rack router, learned by BGP over IPv6
    block6_far = next(b for b in node4.facts["blocks"] if ":" in b)
    learned = in_node(cluster, "node1", "ip", "-6", "route", "show", block6_far)
    assert "proto bird" in learned and "via fd00:192:168:1::1" in learned
    protocols = cluster.mode.routing_sessions(state, "node1")
    for session in ("node_node2_v6", "rack_router_v6", "node_node2", "rack_router"):
        line = next(li for li in protocols.splitlines() if li.startswith(session + " "))
        assert "Established" in line, line
    assert "kernel6" in protocols and "blocks6" in protocols



def test_openflow_dual_stack_across_racks(make_cluster):
    """Antrea's IPv6 shape: gw0 with an address of each family, IPv6 pod traffic tunnelled to
    the peer's IPv6 address, neighbour discovery switched (NORMAL) instead of answered."""
    cluster = make_cluster("two-racks.yaml", "openflow", ip_family="dual")
    state = cluster.state
    assert all(families_of(r) == [4, 6] for r in state.pods.values())
    assert full_matrix_over(state, family=6) == []
    assert full_matrix_over(state, family=4) == []  # the IPv4 side as before
    # MTU 1430 (underlay - 70, Antrea's deduction for a node with IPv6): a large transfer
    # across racks fits the IPv6 tunnel without a Packet Too Big
    assert state.pod_mtu == 1430
    assert transfer(cluster, 4 << 20, "node1-pod1", "node4-pod1", family=6)
    node1, node3 = cluster.nodes["node1"], cluster.nodes["node3"]
    gateway_v6 = node1.facts["gateway_v6"]
    assert f"{gateway_v6}/64" in in_node(cluster, "node1", "ip", "-6", "addr", "show", "gw0")
    routes = in_node(cluster, "node1", "ip", "-6", "route", "show", str(node3.lease_v6))
    assert f"via {node3.facts['gateway_v6']} dev gw0" in routes and "onlink" in routes
    neigh = in_node(cluster, "node1", "ip", "-6", "neigh", "show", node3.facts["gateway_v6"])
    assert "lladdr aa:bb:cc:dd:ee:ff PERMANENT" in neigh
    flows = cluster.mode.switches["node1"].ofctl("dump-flows", "br-int")
    assert "icmp6,icmp_type=135,icmp_code=0 actions=NORMAL" in flows
    assert "icmp6,icmp_type=136,icmp_code=0 actions=NORMAL" in flows
    tunnel = next(line for line in flows.splitlines() if f"ipv6_dst={node3.lease_v6}" in line)
    assert f"set_field:{node3.ip_v6.ip}->tun_ipv6_dst" in tunnel and "dec_ttl" in tunnel
    record = pod(cluster, "node1-pod1")
    assert f"ipv6_src={record.ips[1]} actions=goto_table:10" in flows  # spoof guard



@pytest.mark.parametrize("topo, routing", [("default.yaml", "native"),
                                           ("two-racks.yaml", "tunnel")])
def test_ebpf_dual_stack_in_both_routings(make_cluster, tmp_path, topo, routing):
    """Cilium's IPv6 side: endpoint and ipcache entries of both families, IPv6 through
    bpf_fib_lookup (native) or over the IPv4 tunnel, the pod's gateway answered by the
    program's neighbour advertisement, the lb6/ct6 maps pinned beside the lb4/ct4 ones."""
    from testbed.modes.ebpf import maps
    from testbed.modes.ebpf.mode import maps_dir
    cluster = make_cluster(topo, "ebpf", ip_family="dual")
    state = cluster.state
    assert all(families_of(r) == [4, 6] for r in state.pods.values())
    assert full_matrix_over(state, family=6) == []
    assert full_matrix_over(state, family=4) == []  # the IPv4 side as before
    far = "node4-pod1" if routing == "tunnel" else "node2-pod1"
    assert transfer(cluster, 4 << 20, "node1-pod1", far, family=6)
    pinned = maps_dir(state.name, "node1")
    endpoints = [maps.decode_endpoint(k, v) for k, v in maps.dump(pinned, maps.ENDPOINTS)]
    record = pod(cluster, "node1-pod1")
    assert {e["ip"] for e in endpoints} >= set(record.ips)
    ipcache = {e["prefix"]: e for e in (maps.decode_ipcache(k, v)
                                        for k, v in maps.dump(pinned, maps.IPCACHE))}
    peer = cluster.nodes["node4" if routing == "tunnel" else "node2"]
    entry = ipcache[str(peer.lease_v6)]
    assert entry["tunnel_endpoint"] == str(peer.ip.ip)  # IPv6 rides the IPv4 underlay
    assert ipcache[f"{pod(cluster, far).ips[1]}/128"]["identity"] >= maps.FIRST_IDENTITY
    names = set(os.listdir(pinned))
    assert {"cilium_lb6_services_v2", "cilium_lb6_backends_v3", "cilium_lb6_reverse_nat",
            "cilium_ct6_global"} <= names
    counters = {(m["program"], m["reason"]): m["packets"] for m in (
        maps.decode_metrics(k, v) for k, v in maps.dump(pinned, maps.METRICS))}
    assert counters.get(("cil_from_container", "arp-reply"), 0) > 0  # ND answered too
    neigh = netns.run(netns.in_pod(record.netns, ["ip", "-6", "neigh", "show",
                                                  cluster.nodes["node1"].facts["router6"]]))
    lxc_mac = record.result["interfaces"][0]["mac"]
    assert lxc_mac in neigh  # the pod's gateway resolved to its lxc device's MAC
    routes = in_node(cluster, "node1", "ip", "-6", "route", "show", str(peer.lease_v6))
    if routing == "native":  # autoDirectNodeRoutes of IPv6, via the peer's IPv6 address
        assert f"via {peer.ip_v6.ip} dev eth0" in routes
        assert counters.get(("cil_from_container", "to-netdev"), 0) > 0
        # an IPv6 Service without endpoints is refused by ICMPv6 port unreachable, as an
        # IPv4 one is by ICMP's (kube-proxy's REJECT)
        (tmp_path / "empty.yaml").write_text(EMPTY)
        apply.apply(cluster, manifests.load(str(tmp_path / "empty.yaml")))
        ip = state.services["default/empty"].all_cluster_ips[1]
        refused = subprocess.run(netns.in_pod(record.netns, [
            "curl", "-s", "-m", "3", "-g", f"http://[{ip}]/"]), capture_output=True, text=True)
        assert refused.returncode == 7  # curl: could not connect (refused), not a timeout
    else:
        assert "dev cilium_host" in routes
        assert counters.get(("cil_from_container", "to-overlay"), 0) > 0


EMPTY = """\
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  ipFamilyPolicy: RequireDualStack
  selector: {app: nobody}
  ports: [{port: 80}]
"""

SERVER = """\
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  nodeName: node2
  containers:
  - {name: web, image: registry.k8s.io/e2e-test-images/agnhost:2.47,
     args: [netexec, --http-port=8080]}
"""


def only_from(block):
    return f"""\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: only-from}}
spec:
  podSelector: {{matchLabels: {{app: server}}}}
  ingress:
  - from: [{{ipBlock: {{cidr: "{block}"}}}}]
    ports: [{{port: 8080}}]
"""


def connects(cluster, src, ip, port=8080):
    sandbox = pod(cluster, src).netns
    url = f"http://[{ip}]:{port}/hostname" if ":" in ip else f"http://{ip}:{port}/hostname"
    return subprocess.run(netns.in_pod(sandbox, ["curl", "-s", "-m", "2", url]),
                          capture_output=True, text=True).stdout == "server"


@pytest.mark.parametrize("mode, extra", [("bgp", ""), ("vxlan", "networkPolicy: {enforce: "
                                                              "true}\n")])
def test_network_policy_per_family_with_an_ipv6_ip_block(make_cluster, tmp_path, mode, extra):
    """Calico (bgp) and Canal (vxlan + enforce) render a table per family: an IPv6 ipBlock
    admits its IPv6 peer and nothing over IPv4; the denied IPv6 connection is counted."""
    topo = tmp_path / "dual.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + extra)
    cluster = make_cluster(topo, mode, ip_family="dual")
    client_v4, client_v6 = pod(cluster, "node1-pod1").ips
    (tmp_path / "server.yaml").write_text(SERVER)
    apply.apply(cluster, manifests.load(str(tmp_path / "server.yaml")))
    server_v4, server_v6 = pod(cluster, "server").ips
    assert connects(cluster, "node1-pod2", server_v6) and connects(cluster, "node1-pod2",
                                                                   server_v4)
    (tmp_path / "policy.yaml").write_text(only_from(f"{client_v6}/128"))
    apply.apply(cluster, manifests.load(str(tmp_path / "policy.yaml")))
    assert connects(cluster, "node1-pod1", server_v6)          # the block's own address
    assert not connects(cluster, "node1-pod1", server_v4)      # its IPv4 is in no block
    assert not connects(cluster, "node1-pod2", server_v6)      # another IPv6 peer
    tables = in_node(cluster, "node2", "nft", "list", "tables")
    assert "table ip calico" in tables and "table ip6 calico" in tables
    v6 = in_node(cluster, "node2", "nft", "list", "table", "ip6", "calico")
    assert f"ip6 saddr {client_v6} " in v6  # nft shows a /128 as the address
    assert client_v6 not in in_node(cluster, "node2", "nft", "list", "table", "ip", "calico")
    denied = read_drops(cluster.state)
    peers = {(d.peer, d.src) for d in denied if d.pod == "default/server"}
    assert ("default/node1-pod2", pod(cluster, "node1-pod2").ips[1]) in peers
    assert ("default/node1-pod1", client_v4) in peers
