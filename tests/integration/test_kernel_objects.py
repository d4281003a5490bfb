"""The kernel objects of each mode equal flannel's, name for name."""
import ipaddress
import json
import subprocess

from testbed.host import netns

from .conftest import TOPO


def link(ns, name):
    return ns.ip_json("link", "show", name)[0]


def test_vxlan_device_routes_neighbours_and_fdb(make_cluster):
    cluster = make_cluster("two-racks.yaml", "vxlan")
    nodes = cluster.nodes
    for node in nodes.values():
        dev = link(node.ns, "flannel.1")
        info = dev["linkinfo"]["info_data"]
        assert dev["linkinfo"]["info_kind"] == "vxlan"
        assert (info["id"], info["port"], info["learning"]) == (1, 8472, False)
        assert info["local"] == str(node.ip.ip) and dev["mtu"] == 1450
        addrs = [(a["local"], a["prefixlen"]) for a in node.ns.ip_json("addr", "show", "flannel.1")
                 [0]["addr_info"]]
        assert addrs == [(str(node.lease.network_address), 32)]
        peers = [p for p in nodes.values() if p is not node]

        routes = node.ns.ip_json("route", "show", "dev", "flannel.1")
        assert sorted((r["dst"], r["gateway"], "onlink" in r["flags"]) for r in routes) == sorted(
            (str(p.lease), str(p.lease.network_address), True) for p in peers)

        neighs = node.ns.ip_json("neigh", "show", "dev", "flannel.1")
        assert sorted((n["dst"], n["lladdr"], n["state"]) for n in neighs) == sorted(
            (str(p.lease.network_address), p.facts["vtep_mac"], ["PERMANENT"]) for p in peers)

        fdb = json.loads(node.ns.run("bridge", "-j", "fdb", "show", "dev", "flannel.1"))
        fdb = [f for f in fdb if f.get("dst")]
        assert sorted((f["mac"], f["dst"]) for f in fdb) == sorted(
            (p.facts["vtep_mac"], str(p.ip.ip)) for p in peers)


def test_pod_interfaces_have_the_mode_mtu_and_cni0_is_the_gateway(make_cluster):
    for mode, mtu in (("vxlan", 1450), ("host-gw", 1500)):
        cluster = make_cluster("default.yaml", mode)
        for name, rec in cluster.state.pods.items():
            pod = netns.pod_namespace(rec.netns)
            assert link(pod, "eth0")["mtu"] == mtu, (mode, name)
            node = cluster.nodes[rec.node]
            assert ipaddress.ip_address(rec.ip) in node.lease
            default = [r for r in pod.ip_json("route", "show") if r["dst"] == "default"]
            assert default[0]["gateway"] == str(node.lease[1])
        for node in cluster.nodes.values():
            cni0 = node.ns.ip_json("addr", "show", "cni0")[0]
            assert [(a["local"], a["prefixlen"]) for a in cni0["addr_info"]] == [
                (str(node.lease[1]), 24)]
            env = open(node.facts["subnet_env"]).read()
            assert f"FLANNEL_MTU={mtu}" in env and "FLANNEL_NETWORK=10.244.0.0/16" in env
        cluster.__exit__(None, None, None)


def test_host_gw_routes_via_peer_node_ips_and_adds_no_device(make_cluster):
    cluster = make_cluster("three-nodes.yaml", "host-gw")
    for node in cluster.nodes.values():
        assert all(link["ifname"] != "flannel.1" for link in node.ns.ip_json("link", "show"))
        routes = [r for r in node.ns.ip_json("route", "show", "dev", "eth0")
                  if r.get("gateway")]
        peers = [p for p in cluster.nodes.values() if p is not node]
        assert sorted((r["dst"], r["gateway"]) for r in routes) == sorted(
            (str(p.lease), str(p.ip.ip)) for p in peers)


def test_sandboxes_are_listed_by_ip_netns(make_cluster):
    cluster = make_cluster("default.yaml", "vxlan")
    name = cluster.spec.name
    sandboxes = {rec.netns for rec in cluster.state.pods.values()}
    assert sandboxes == {f"node{n}-pod{p}.default.{name}" for n in (1, 2) for p in (1, 2)}
    assert sandboxes <= set(netns.netns_list())
    out = netns.run(["ip", "netns", "exec", f"node1-pod1.default.{name}", "ip", "-4", "-o",
                     "addr", "show", "eth0"])
    assert cluster.state.pods["default/node1-pod1"].ip in out


# Accepts one TCP connection on port 7777 and prints the address it came from.
PEER = ("import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); "
        "s.bind(('0.0.0.0',7777)); s.listen(1); print('ready',flush=True); c,a=s.accept(); "
        "print(a[0],flush=True)")
CONNECT = "import socket,sys; socket.create_connection((sys.argv[1],7777),timeout=5).close()"


def seen_from(server_argv, client_argv, address):
    """The source address a TCP connection from the client arrives with at the server."""
    server = subprocess.Popen(server_argv(["python3", "-c", PEER]), stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        netns.run(client_argv(["python3", "-c", CONNECT, address]))
        return server.communicate(timeout=10)[0].strip()
    finally:
        server.kill()
        server.wait()


def test_flanneld_s_masquerade_pods_leave_as_their_node_and_meet_as_themselves(make_cluster,
                                                                               tmp_path):
    topo = tmp_path / "external.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "externalClient: true\n")
    cluster = make_cluster(topo, "vxlan")
    state, node1 = cluster.state, cluster.nodes["node1"]
    saved = node1.ns.run("iptables-save")
    assert '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG' in saved
    assert '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD' in saved
    assert "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment " \
        '"flanneld masq" -j MASQUERADE --random-fully' in saved
    pod1, pod2 = state.pods["default/node1-pod1"], state.pods["default/node2-pod1"]
    external = state.hosts["external"]
    in_pod = lambda rec: lambda argv: netns.in_pod(rec.netns, argv)  # noqa: E731
    # to the external host (outside the pod network): masqueraded to the node's address
    assert seen_from(lambda argv: netns.in_node(external.pid, argv), in_pod(pod1),
                     external.ip) == str(node1.ip.ip)
    # pod to pod across nodes: the pod's own address
    assert seen_from(in_pod(pod2), in_pod(pod1), pod2.ip) == pod1.ip


def test_a_ping_across_vxlan_nodes_comes_back_with_ttl_62(make_cluster):
    """Two routed hops (each node forwards once); the udp mode's forwarders add two more."""
    cluster = make_cluster("default.yaml", "vxlan")
    src, dst = cluster.state.pods["default/node1-pod1"], cluster.state.pods["default/node2-pod1"]
    out = netns.run(netns.in_pod(src.netns, ["ping", "-c1", "-W2", dst.ip]))
    assert "ttl=62" in out
