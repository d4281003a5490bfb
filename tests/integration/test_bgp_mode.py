"""The Calico-style bgp mode: kernel objects, BIRD sessions, failures and recovery."""
import os
import signal
import subprocess
import time

from testbed.host import netns
from testbed.modes.bgp import calico_plugin

from .conftest import TOPO, Footprint, in_pod, pod, run_testbed, unique_name


def sessions(cluster, node):
    out = cluster.mode.routing_sessions(cluster.state, node)
    return {line.split()[0]: line.split()[-1] for line in out.splitlines()
            if " BGP " in line}


def test_kernel_objects_are_calicos(make_cluster):
    cluster = make_cluster("default.yaml", "bgp")
    pods = cluster.state.pods
    for node in cluster.nodes.values():
        links = node.ns.ip_json("link", "show")
        assert not any(link["ifname"] in ("cni0", "flannel.1") for link in links)
        routes = node.ns.ip_json("route", "show")
        blackholes = [r["dst"] for r in routes if r.get("type") == "blackhole"]
        assert blackholes == node.facts["blocks"]
        for rec in pods.values():
            if rec.node != node.name:
                continue
            cali = calico_plugin.host_veth_name(rec.namespace, rec.name)
            dev = node.ns.ip_json("link", "show", cali)[0]
            assert dev["address"] == "ee:ee:ee:ee:ee:ee" and len(cali) == 15
            assert node.ns.run("cat", f"/proc/sys/net/ipv4/conf/{cali}/proxy_arp").strip() == "1"
            host_route = [r for r in routes if r["dst"] == rec.ip][0]
            assert (host_route["dev"], host_route["scope"]) == (cali, "link")
            sandbox = netns.pod_namespace(rec.netns)
            addr = sandbox.ip_json("-4", "addr", "show", "eth0")[0]["addr_info"]
            assert [(a["local"], a["prefixlen"]) for a in addr] == [(rec.ip, 32)]
            default = [r for r in sandbox.ip_json("route", "show") if r["dst"] == "default"][0]
            assert default["gateway"] == "169.254.1.1"
        others = [p for p in cluster.nodes.values() if p is not node]
        bird_routes = {r["dst"]: r["gateway"] for r in routes
                       if r.get("protocol") == "bird" and r.get("gateway")}
        assert bird_routes == {b: str(p.ip.ip) for p in others for b in p.facts["blocks"]}
    assert cluster.timings["bgp_converged_s"] > 0


def test_route_reflectors_carry_all_routes_without_a_mesh(make_cluster):
    cluster = make_cluster("route-reflectors.yaml", "bgp")
    assert set(sessions(cluster, "node3")) == {"node_node1", "node_node2"}  # clients: RRs only
    assert len(sessions(cluster, "node1")) == 4  # a reflector: everyone in its rack
    assert all(state == "Established" for state in sessions(cluster, "node3").values())
    assert cluster.mode.missing_routes(cluster.context) == []


def test_a_dead_bird_withdraws_its_routes_and_a_restart_restores_them(make_cluster):
    cluster = make_cluster("default.yaml", "bgp")
    node1 = cluster.nodes["node1"]
    block2 = cluster.nodes["node2"].facts["blocks"][0]
    os.kill(cluster.mode.daemons(cluster.context)["bird@node2"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and cluster.check_daemons()["bird@node2"].alive:
        time.sleep(0.05)
    assert cluster.check_daemons()["bird@node2"].state == "killed by signal 9"
    deadline = time.monotonic() + 20  # hold time 9 s
    while time.monotonic() < deadline and any(
            r["dst"] == block2 for r in node1.ns.ip_json("route", "show", "proto", "bird")):
        time.sleep(0.5)
    assert not any(r["dst"] == block2 for r in node1.ns.ip_json("route", "show", "proto", "bird"))
    cluster.restart_daemon("node2")
    started = time.monotonic()
    cluster.mode.wait_converged(cluster.context, started, timeout=30)
    target = pod(cluster, "node2-pod1").ip
    assert subprocess.run(in_pod(cluster, "node1-pod1", ["ping", "-c1", "-W2", target]),
                          capture_output=True).returncode == 0


def test_routes_command_and_teardown_leave_no_bird(require):
    require("bird", "birdc")
    before, name = Footprint(), unique_name()
    up = run_testbed("up", "--topo", TOPO / "two-racks.yaml", "--mode", "bgp", "--no-cli",
                     "--name", name, check=True)
    assert "BGP converged" in up.stdout
    from testbed.model.state import RunState, run_dir_for
    pids = RunState.load(run_dir_for(name)).owned.pids
    assert sum(p.what.startswith("bird of") for p in pids) == 5  # 4 nodes + the router
    try:
        routes = run_testbed("routes", "node3", "--name", name, check=True).stdout
        assert "blackhole 10.244.0.128/26 proto bird" in routes
        assert "rack_router" in routes and "Established" in routes
    finally:
        run_testbed("down", "--name", name, check=True)
    assert Footprint().leftovers(before, pids) == []
