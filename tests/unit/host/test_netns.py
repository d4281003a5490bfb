"""Reading a namespace's routes from /proc, and batches of ip commands, without root."""
from testbed.host import netns

# /proc/net/route as the kernel writes it: addresses little-endian hex
PROC_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t4001F40A\t0C01A8C0\t0003\t0\t0\t0\tC0FFFFFF\t0\t0\t0
*\t0000F40A\t00000000\t0201\t0\t0\t0\tC0FFFFFF\t0\t0\t0
"""


def test_routed_networks_leave_out_blackholes(tmp_path, monkeypatch):
    (tmp_path / "7" / "net").mkdir(parents=True)
    (tmp_path / "7" / "net" / "route").write_text(PROC_ROUTE)
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(
        str(path).replace("/proc", str(tmp_path)), *a, **k))
    # a peer's block via its node, the rack subnet, the default route; not the own blackhole
    assert netns.routed_networks(7) == {"10.244.1.64/26", "192.168.1.0/24", "0.0.0.0/0"}


def test_a_batch_is_one_process_with_a_line_per_command(monkeypatch):
    ran = []
    ns = netns.Namespace("n1", lambda argv: ["nsenter", "-t", "7", "-n", "--"] + argv, 7)
    monkeypatch.setattr(netns, "run", lambda argv, **kw: ran.append((argv, kw.get("input"))))
    ns.batch("ip", ["route replace 10.244.1.0/24 via 192.168.1.12 dev eth0",
                    "neigh replace 10.244.1.0 lladdr 02:00:00:00:00:02 dev flannel.1"])
    ns.batch("bridge", [])  # nothing to do: no process
    assert ran == [(["nsenter", "-t", "7", "-n", "--", "ip", "-batch", "-"],
                    "route replace 10.244.1.0/24 via 192.168.1.12 dev eth0\n"
                    "neigh replace 10.244.1.0 lladdr 02:00:00:00:00:02 dev flannel.1\n")]
