"""The flannel udp mode: flannel0, the forwarders, their faults and their peer table."""
import os
import signal
import subprocess
import sys
import time

import pytest

from testbed.host import netns
from testbed.host.processes import pid_is
from testbed.kubelet.standins import stand_in

from .conftest import TOPO, Footprint, in_pod, pod, run_testbed, transfer, unique_name


def ping_once(cluster, name, ip):
    proc = subprocess.run(in_pod(cluster, name, ["ping", "-c1", "-W2", ip]),
                          capture_output=True, text=True)
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
    for rec in cluster.state.pods.values():
        assert netns.pod_namespace(rec.netns).ip_json("link", "show", "eth0")[0]["mtu"] == 1472


def offloads(node, dev):
    text = node.ns.run("ethtool", "-k", dev)
    return {k.strip(): v.split()[0] for k, v in
            (line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)}


def test_udp_gso_crosses_in_bundles_and_arrives_intact(make_cluster):
    cluster = make_cluster("default.yaml", "udp-gso")
    node1, node2 = cluster.nodes["node1"], cluster.nodes["node2"]
    assert offloads(node1, "flannel0")["tcp-segmentation-offload"] == "on"
    assert transfer(cluster, 48 << 20)
    sent, received = cluster.mode.stats(node1), cluster.mode.stats(node2)
    assert sent["offload"] and sent["tx_bundles"] > 0 and received["rx_bundles"] > 0
    # bundles of many datagrams, not one each: 48 MiB is ~35,000 segments
    assert sent["tx_packets"] > 20 * sent["tx_bundles"] > 0
    assert received["rx_packets"] >= sent["tx_packets"] - 10  # all arrived, none dropped
    assert sent["bad_offload"] == received["bad_offload"] == 0


# Reads UDP datagrams to port 8285 from eth0 for argv[1] seconds; prints, per datagram, the
# outer IP length, the inner IP length field, the UDP payload length and whether the inner IP
# and TCP checksums are right.
SNIFF = r"""
import socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return s
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: keep up with the flow
s.bind(('eth0', 0)); s.settimeout(0.2); end = time.time() + float(sys.argv[1])
print('ready', flush=True)
while time.time() < end:
    try: f = s.recv(70000)[14:]
    except socket.timeout: continue
    ihl = (f[0] & 15) * 4
    if f[9] != 17 or struct.unpack('!H', f[ihl + 2:ihl + 4])[0] != 8285: continue
    inner = f[ihl + 8:]
    iihl = (inner[0] & 15) * 4
    tot = struct.unpack('!H', inner[2:4])[0]
    ok_ip = csum(inner[:iihl]) == 0xffff
    pseudo = inner[12:20] + struct.pack('!HH', 6, tot - iihl)
    ok_tcp = inner[9] != 6 or csum(pseudo + inner[iihl:tot]) == 0xffff
    print(len(f), tot, len(inner), int(ok_ip), int(ok_tcp), flush=True)
"""


@pytest.mark.parametrize("mode", ["udp", "udp-gso"])
def test_on_the_wire_each_datagram_carries_one_whole_packet_as_flannels_does(make_cluster, mode):
    cluster = make_cluster("default.yaml", mode)
    node1, node2 = cluster.nodes["node1"], cluster.nodes["node2"]
    # A NIC would cut the UDP bundles into datagrams; veth passes them whole unless told not to.
    node1.ns.run("ethtool", "-K", "eth0", "tx-udp-segmentation", "off")
    sniff = subprocess.Popen(node2.ns.argv("python3", "-c", SNIFF, "8"), stdout=subprocess.PIPE,
                             text=True)
    try:
        assert sniff.stdout.readline().strip() == "ready"
        assert transfer(cluster, 4 << 20)
        lines = sniff.communicate(timeout=30)[0].split()
    finally:
        sniff.kill()
        sniff.wait()
    datagrams = [tuple(map(int, lines[i:i + 5])) for i in range(0, len(lines), 5)]
    full = [d for d in datagrams if d[0] == 1500]  # data segments fill flannel0's MTU
    assert len(full) > 1000  # of the ~3,000 4 MiB takes (a Python sniffer may miss some)
    assert max(outer for outer, *_ in datagrams) <= 1500
    assert all(inner == payload for _, inner, payload, _, _ in datagrams)
    assert all(ok_ip and ok_tcp for *_, ok_ip, ok_tcp in datagrams)


def test_udp_moves_one_packet_at_a_time_as_flannels_loop(make_cluster):
    cluster = make_cluster("default.yaml", "udp")
    node1, node2 = cluster.nodes["node1"], cluster.nodes["node2"]
    assert offloads(node1, "flannel0")["tcp-segmentation-offload"] == "off"
    assert transfer(cluster, 8 << 20)
    sent, received = cluster.mode.stats(node1), cluster.mode.stats(node2)
    assert not sent["offload"] and sent["tx_bundles"] == received["rx_bundles"] == 0
    # flannel keeps the kernel's default socket buffers: under load the receiving socket
    # overflows, as flannel's does, and TCP sends those segments again; every datagram is
    # either forwarded or counted by the kernel as dropped for want of buffer
    assert sent["tx_packets"] > 5000
    dropped = udp_counters(node2)["RcvbufErrors"]
    assert received["rx_packets"] + dropped >= sent["tx_packets"] - 10
    assert "one packet per system call" in cluster.mode.describe_datapath(cluster.spec, {})


def udp_counters(node):
    """The node's UDP counters (/proc/net/snmp), by name."""
    lines = [line.split() for line in node.ns.run("cat", "/proc/net/snmp").splitlines()
             if line.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def test_ttl_is_decremented_by_both_forwarders_as_flannels_are(make_cluster):
    cluster = make_cluster("default.yaml", "udp")
    ok, out = ping_once(cluster, "node1-pod1", pod(cluster, "node2-pod1").ip)
    # node2 routes the reply (-1), its forwarder sends it (-1), node1's receives it (-1),
    # node1 routes it to the pod (-1): 64 - 4
    assert ok and "ttl=60" in out


def test_unknown_destination_icmp_as_flannel_sends_it(make_cluster):
    """In the cluster CIDR but in no lease: for TCP the forwarder writes an ICMP net-unreachable
    into flannel0 from flannel0's own address with TTL 8, which the node's kernel drops as a
    martian (its source is the node's own), so the connection times out; for a ping (ICMP) the
    forwarder sends no ICMP at all (RFC 792)."""
    cluster = make_cluster("default.yaml", "udp")
    node1 = cluster.nodes["node1"]
    capture = subprocess.Popen(node1.ns.argv("timeout", "8", "tcpdump", "-l", "-n", "-v",
                                             "-i", "flannel0", "icmp"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # tcpdump listening
        ok, out = ping_once(cluster, "node1-pod1", "10.244.200.7")
        assert not ok and "Unreachable" not in out
        assert cluster.mode.stats(node1)["icmp_sent"] == 0
        connect = subprocess.run(in_pod(cluster, "node1-pod1", stand_in("node1-pod1") + [
            "connect", "10.244.200.7:80", "--timeout=2s"]), capture_output=True, text=True)
        assert connect.returncode == 1 and "TIMEOUT" in connect.stdout + connect.stderr
        assert cluster.mode.stats(node1)["icmp_sent"] >= 1
        assert cluster.mode.stats(node1)["no_route"] >= 2  # the ping and the SYN
    finally:
        captured = capture.communicate(timeout=15)[0]
    flannel0 = str(node1.lease.network_address)
    pod_ip = pod(cluster, "node1-pod1").ip
    assert "ttl 8," in captured and f"{flannel0} > {pod_ip}: ICMP net 10.244.200.7 " \
        "unreachable" in captured, captured
    assert "echo request" not in captured.split("unreachable")[-1]


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
    assert cluster.check_daemons()["forwarder@node1"].alive
    assert ping_once(cluster, "node2-pod1", pod(cluster, "node1-pod1").ip)[0]


def test_a_killed_forwarder_is_reported_and_a_restart_restores_traffic(make_cluster):
    cluster = make_cluster("default.yaml", "udp")
    target = pod(cluster, "node2-pod1").ip
    pid = cluster.mode.daemons(cluster.context)["forwarder@node2"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    status = cluster.check_daemons()["forwarder@node2"]
    assert (status.alive, status.state) == (False, "killed by signal 9")
    assert cluster.state.daemons["forwarder@node2"].state == "killed by signal 9"
    assert not ping_once(cluster, "node1-pod1", target)[0]
    cluster.restart_daemon("node2")
    assert cluster.check_daemons()["forwarder@node2"].alive
    assert ping_once(cluster, "node1-pod1", target)[0]


def test_the_peer_table_follows_nodes_without_a_restart(make_cluster):
    cluster = make_cluster("three-nodes.yaml", "udp")
    node1, node3 = cluster.nodes["node1"], cluster.nodes["node3"]
    pid = cluster.mode.daemons(cluster.context)["forwarder@node1"]
    target = pod(cluster, "web").ip  # on node3
    cluster.mode.remove_peer(cluster.spec, node1, node3)
    unrouted = cluster.mode.stats(node1)["no_route"]
    assert not ping_once(cluster, "node1-pod1", target)[0]
    assert cluster.mode.stats(node1)["no_route"] == unrouted + 1  # no lease: not forwarded
    cluster.mode.add_peer(cluster.spec, node1, node3)
    assert ping_once(cluster, "node1-pod1", target)[0]
    assert cluster.mode.daemons(cluster.context)["forwarder@node1"] == pid


def test_cli_reports_a_dead_forwarder_and_teardown_leaves_nothing(require):
    require("tun", "flannel-udp-forwarder")
    before, name = Footprint(), unique_name()
    run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "udp", "--no-cli",
                "--name", name, check=True)
    from testbed.model.state import RunState, run_dir_for
    state = RunState.load(run_dir_for(name))
    pids = state.owned.pids
    forwarder = next(p for p in pids if p.what == "udp forwarder on node1")
    try:
        os.kill(forwarder.pid, signal.SIGKILL)
        time.sleep(1.0)  # the supervisor looks twice a second
        status = run_testbed("status").stdout
        assert "DEAD: forwarder@node1 killed by signal 9" in status
        daemons = run_testbed("daemons", "--name", name)
        assert daemons.returncode == 1 and "killed by signal 9" in daemons.stdout
        restarted = run_testbed("daemons", "--name", name, "--restart", "node1", check=True)
        assert "killed" not in restarted.stdout
        pids = RunState.load(run_dir_for(name)).owned.pids
    finally:
        run_testbed("down", "--name", name, check=True)
    assert Footprint().leftovers(before, pids) == []
    assert not any(pid_is(p.pid, p.start) for p in pids)


def test_interactive_cli_warns_of_a_dead_forwarder_and_restarts_it(require):
    require("tun", "flannel-udp-forwarder")
    before, name = Footprint(), unique_name()
    pid_of = (f"python3 -c \"import json; print(json.load(open('/run/testbed/{name}/state.json'))"
              f"['nodes']['node2']['details']['forwarder_pid'])\"")
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
