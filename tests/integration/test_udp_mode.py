"""The flannel udp mode: flannel0, the forwarders, their faults and their peer table."""
import os
import signal
import subprocess
import sys
import time


from testbed import netns
from testbed.state import pid_is

from .conftest import TOPO, Footprint, run_testbed, unique_name


def ping_once(pod, ip):
    proc = subprocess.run(netns.in_pod(pod, ["ping", "-c1", "-W2", ip]), capture_output=True,
                          text=True)
    return proc.returncode == 0, proc.stdout


def test_flannel0_and_the_forwarder_as_flannel_makes_them(make_cluster):
    cluster = make_cluster("two-racks.yaml", "udp")
    for node in cluster.nodes.values():
        dev = node.ns.ip_json("link", "show", "flannel0")[0]
        assert dev["linkinfo"]["info_kind"] == "tun" and dev["mtu"] == 1472
        addrs = node.ns.ip_json("addr", "show", "flannel0")[0]["addr_info"]
        assert [(a["local"], a["prefixlen"]) for a in addrs] == [
            (str(node.lease.network_address), 32)]
        routes = node.ns.ip_json("route", "show", "dev", "flannel0")
        assert [r["dst"] for r in routes] == ["10.244.0.0/16"]
        listening = node.ns.run("ss", "-Hlun", "sport = :8285")
        assert f"{node.ip.ip}:8285" in listening
        assert cluster.mode.stats(node)["peers"] == len(cluster.nodes) - 1
    for name in cluster.state.data["pods"]:
        assert netns.pod_namespace(name).ip_json("link", "show", "eth0")[0]["mtu"] == 1472


def test_ttl_is_decremented_by_the_forwarder(make_cluster):
    cluster = make_cluster("default.yaml", "udp")
    ok, out = ping_once("node1-pod1", cluster.state.data["pods"]["node2-pod1"]["ip"])
    # node1 routes (-1), the forwarder (-1), node2 routes (-1); the echo reply alike
    assert ok and "ttl=61" in out


def test_unknown_destination_gets_net_unreachable(make_cluster):
    cluster = make_cluster("default.yaml", "udp")
    ok, out = ping_once("node1-pod1", "10.244.200.7")  # in the cluster CIDR, in no lease
    assert not ok and "Destination Net Unreachable" in out
    assert cluster.mode.stats(cluster.nodes["node1"])["no_route"] >= 1


def test_garbage_datagrams_are_dropped_counted_and_forwarding_goes_on(make_cluster):
    cluster = make_cluster("default.yaml", "udp")
    node1, node2 = cluster.nodes["node1"], cluster.nodes["node2"]
    send = ("import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
            "[s.sendto(bytes.fromhex(h),(sys.argv[1],8285)) for h in sys.argv[2:]]")
    garbage = ["00",                                   # too short
               "60" + "00" * 39,                       # IPv6, not IPv4
               "45000099" + "00" * 16]                 # IPv4 header, wrong total length
    node2.ns.run("python3", "-c", send, node1.ip.ip, *garbage)       # from a known peer
    cluster.nodes["node1"].ns.run("python3", "-c", send, node1.ip.ip, "45")  # from itself
    time.sleep(0.2)
    stats = cluster.mode.stats(node1)
    assert (stats["too_short"], stats["not_ipv4"], stats["bad_length"]) == (1, 1, 1)
    assert stats["unknown_peer"] == 1
    assert cluster.check_daemons()["forwarder@node1"]["alive"]
    assert ping_once("node2-pod1", cluster.state.data["pods"]["node1-pod1"]["ip"])[0]


def test_a_killed_forwarder_is_reported_and_a_restart_restores_traffic(make_cluster):
    cluster = make_cluster("default.yaml", "udp")
    target = cluster.state.data["pods"]["node2-pod1"]["ip"]
    pid = cluster.mode.daemons(cluster)["forwarder@node2"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    status = cluster.check_daemons()["forwarder@node2"]
    assert (status["alive"], status["state"]) == (False, "killed by signal 9")
    assert cluster.state.data["daemons"]["forwarder@node2"]["state"] == "killed by signal 9"
    assert not ping_once("node1-pod1", target)[0]
    cluster.restart_daemon("node2")
    assert cluster.check_daemons()["forwarder@node2"]["alive"]
    assert ping_once("node1-pod1", target)[0]


def test_the_peer_table_follows_nodes_without_a_restart(make_cluster):
    cluster = make_cluster("three-nodes.yaml", "udp")
    node1, node3 = cluster.nodes["node1"], cluster.nodes["node3"]
    pid = cluster.mode.daemons(cluster)["forwarder@node1"]
    target = cluster.state.data["pods"]["web"]["ip"]  # on node3
    cluster.mode.remove_peer(cluster.spec, node1, node3)
    ok, out = ping_once("node1-pod1", target)
    assert not ok and "Destination Net Unreachable" in out
    cluster.mode.add_peer(cluster.spec, node1, node3)
    assert ping_once("node1-pod1", target)[0]
    assert cluster.mode.daemons(cluster)["forwarder@node1"] == pid


def test_cli_reports_a_dead_forwarder_and_teardown_leaves_nothing(require):
    require("tun", "flannel-udp-forwarder")
    before, name = Footprint(), unique_name()
    run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "udp", "--no-cli",
                "--name", name, check=True)
    from testbed.state import RunState, run_dir_for
    state = RunState.load(run_dir_for(name))
    pids = state.owned("pids")
    forwarder = next(p for p in pids if p["what"] == "udp forwarder on node1")
    try:
        os.kill(forwarder["pid"], signal.SIGKILL)
        time.sleep(1.0)  # the supervisor looks twice a second
        status = run_testbed("status").stdout
        assert "DEAD: forwarder@node1 killed by signal 9" in status
        daemons = run_testbed("daemons", "--name", name)
        assert daemons.returncode == 1 and "killed by signal 9" in daemons.stdout
        restarted = run_testbed("daemons", "--name", name, "--restart", "node1", check=True)
        assert "killed" not in restarted.stdout
        pids = RunState.load(run_dir_for(name)).owned("pids")
    finally:
        run_testbed("down", "--name", name, check=True)
    assert Footprint().leftovers(before, pids) == []
    assert not any(pid_is(p["pid"], p["start"]) for p in pids)


def test_interactive_cli_warns_of_a_dead_forwarder_and_restarts_it(require):
    require("tun", "flannel-udp-forwarder")
    before, name = Footprint(), unique_name()
    pid_of = (f"python3 -c \"import json; print(json.load(open('/run/testbed/{name}/state.json'))"
              f"['nodes']['node2']['forwarder_pid'])\"")
    script = (f"node1 kill -9 $({pid_of}); sleep 0.5\n"  # let the kernel finish it off
              "pods\n"
              "daemons restart node2\n"
              "node1-pod1 ping -c1 -W2 node2-pod1 | grep -c ' 0% packet loss'\n"
              "exit\n")
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", "up", "--topo",
                           str(TOPO / "default.yaml"), "--mode", "udp", "--name", name],
                          input=script, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "forwarder@node2" in proc.stdout and "killed by signal 9: traffic through node2 is " \
        "dropped" in proc.stdout
    assert "\n1\n" in proc.stdout.replace("testbed> ", "\n"), "traffic flows after the restart"
    assert Footprint().leftovers(before) == []
