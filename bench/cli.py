"""The benchmark's verbs, added to the `testbed` command through the `testbed.verbs` entry
point (setup.py), so that the core never imports the benchmark."""
import json
import os

from bench import harness, report
from bench.plot import plot_compare, plot_run
from testbed.cli.common import DEFAULT_TOPOLOGY, ranged
from testbed.errors import TestbedError
from testbed.modes import mode_names


def _csv(text):
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def cmd_bench(args):
    opt = harness.Options(
        topo=args.topo, modes=_csv(args.modes), paths=_csv(args.paths), tests=_csv(args.tests),
        repeats=args.repeats, slices=args.slices, slice_ms=args.slice_ms,
        duration=args.duration,
        streams=args.streams, udp_rate=args.udp_rate, mtu=args.mtu,
        bandwidth=args.bandwidth, delay=args.delay, out=args.out, warmup=not args.no_warmup,
        label=args.label or "", underlay=args.underlay)
    run_dir, summary, skipped = harness.run(opt)
    for mode, reason in skipped.items():
        print(f"mode {mode} left out: {reason}")
    modes = [m for m in ["bare"] + (opt.modes or mode_names()) if m not in skipped]
    print(report.summary_table(summary, list(dict.fromkeys(modes))))
    print(report.comparison_tables(summary))
    print(report.steal_line(summary))
    print(report.retry_line(json.load(open(os.path.join(run_dir, "samples.json")))))
    if not args.no_plot:
        plot_run(str(run_dir))
    print(f"results: {run_dir}")
    return 130 if summary["status"] == "interrupted" else 0


def cmd_plot(args):
    runs = args.runs or [str(harness.newest_run(args.out))]
    for run in runs:
        if not os.path.isfile(os.path.join(run, "summary.json")):
            raise TestbedError(f"{run}: not a benchmark run directory (no summary.json)")
    if len(runs) == 1:
        files = plot_run(runs[0])
    elif len(runs) == 2:
        out = os.path.join(os.path.dirname(os.path.normpath(runs[1])), "compare-" +
                           "-vs-".join(os.path.basename(os.path.normpath(r)) for r in runs))
        files = plot_compare(runs[0], runs[1], out)
    else:
        raise TestbedError("plot takes one run directory, or two to compare")
    for f in files:
        print(f)
    return 0


def register(sub) -> None:
    """bench, plot"""
    bench = sub.add_parser("bench", help="measure every mode side by side, write results/")
    bench.add_argument("--topo", default=str(DEFAULT_TOPOLOGY))
    bench.add_argument("--modes", help="comma list (default: every mode this machine supports)")
    bench.add_argument("--paths", help="comma list of pod-same-node, pod-cross-node, "
                       "pod-cross-rack, node-node, node-cross-rack (default: all)")
    bench.add_argument("--tests", help="comma list of tcp-1, tcp-n, udp, tcp-rr, udp-rr, icmp, "
                       "or all (default: all but udp-rr)")
    bench.add_argument("--repeats", type=ranged(int, 1, 1000), default=3,
                       help="cycles of whole UDP throughput runs, each mode's run "
                       "between two of the bare underlay")
    bench.add_argument("--slices", type=ranged(int, 2, 100000), default=60,
                       help="cycles of time-sliced turns (every test but udp; tcp-n a third)")
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
    bench.add_argument("--out", default="results", help="where run directories go")
    bench.add_argument("--label", help="appended to the run directory's name")
    bench.add_argument("--no-warmup", action="store_true")
    bench.add_argument("--no-plot", action="store_true")
    bench.set_defaults(func=cmd_bench)

    plot = sub.add_parser("plot", help="plot a run (or compare two): PNG and SVG")
    plot.add_argument("runs", nargs="*", help="run directories (default: the newest)")
    plot.add_argument("--out", default="results", help="where to look for the newest run")
    plot.set_defaults(func=cmd_plot, root=False)  # reads result files only
