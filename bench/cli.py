"""The benchmark's verbs, added to the `testbed` command through the `testbed.verbs` entry
point (setup.py), so that the core never imports the benchmark. Only the verbs' arguments are
here; their work is in bench/commands.py, which the command loads when one of them runs (it
brings matplotlib, which the other verbs need not wait for)."""
import argparse

from testbed.cli.common import DEFAULT_TOPOLOGY, ranged


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """bench, plot"""
    bench = sub.add_parser("bench", help="measure every mode side by side, write results/")
    bench.add_argument("--topo", default=str(DEFAULT_TOPOLOGY))
    bench.add_argument("--modes", help="comma list (default: every mode this machine supports)")
    bench.add_argument("--paths", help="comma list of pod-same-node, pod-cross-node, "
                       "pod-cross-rack, node-node, node-cross-rack (default: all)")
    bench.add_argument("--tests", help="comma list of tcp-1, tcp-n, udp, tcp-rr, udp-rr, icmp, "
                       "or all (default: tcp-1,tcp-rr; --full: all but udp-rr)")
    bench.add_argument("--full", action="store_true",
                       help="every test but udp-rr (make bench-full), not only the headline")
    bench.add_argument("--repeats", type=ranged(int, 1, 1000), default=3,
                       help="cycles of whole UDP throughput runs, each mode's run "
                       "between two of the bare underlay")
    bench.add_argument("--sessions", type=ranged(int, 2, 1000), default=8,
                       help="sessions of fresh tool processes per time-sliced test: the "
                       "intervals are taken over them")
    bench.add_argument("--slices", type=ranged(int, 2, 100000), default=80,
                       help="cycles of time-sliced turns of tcp-1, over all sessions (tcp-rr, "
                       "udp-rr and icmp 0.4 of them, tcp-n a third)")
    bench.add_argument("--slice-ms", type=ranged(int, 10, 60000), default=100,
                       help="one time-sliced turn")
    bench.add_argument("--duration", type=ranged(int, 1, 3600), default=1,
                       help="seconds per UDP sample")
    bench.add_argument("--streams", type=ranged(int, 1, 128), default=4,
                       help="parallel streams of tcp-n")
    bench.add_argument("--udp-rate", default="1G", help="offered UDP rate (iperf3 -b)")
    bench.add_argument("--mtu", type=ranged(int, 1280, 9000), help="underlay MTU")
    bench.add_argument("--bandwidth", type=ranged(float, 0.001, 1e6),
                       help="Mbit/s cap on every underlay link")
    bench.add_argument("--delay", type=ranged(float, 0.0, 60000.0),
                       help="ms of delay per link end (needs netem)")
    bench.add_argument("--underlay", choices=["linux", "ovs"],
                       help="what switches the racks (default: the topology's, else linux)")
    bench.add_argument("--family", choices=["ipv4", "ipv6", "dual"], default="ipv4",
                       help="the addresses paths are measured over: ipv6 and dual build "
                       "dual-stack clusters; dual measures each mode over both, its IPv6 "
                       "flows as <mode>-ipv6, so that IPv6 against IPv4 is a comparison of "
                       "the run")
    bench.add_argument("--out", default="results", help="where run directories go")
    bench.add_argument("--label", help="appended to the run directory's name")
    bench.add_argument("--no-warmup", action="store_true")
    bench.add_argument("--no-controls", action="store_true",
                       help="without vxlan built twice and flannel's modes at one pod MTU")
    bench.add_argument("--no-plot", action="store_true")
    bench.set_defaults(func="bench.commands:cmd_bench")

    plot = sub.add_parser("plot", help="plot a run (or compare two): PNG and SVG")
    plot.add_argument("runs", nargs="*", help="run directories (default: the newest)")
    plot.add_argument("--out", default="results", help="where to look for the newest run")
    plot.set_defaults(func="bench.commands:cmd_plot", root=False)  # reads result files only
