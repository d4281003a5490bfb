"""What `testbed bench` and `testbed plot` do (their arguments: bench/cli.py)."""
import argparse
import json
import os

from bench.engine import harness
from bench.plots import report
from bench.plots.plot import plot_compare, plot_run
from testbed.errors import TestbedError
from testbed.modes import mode_names


def _csv(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def cmd_bench(args: argparse.Namespace) -> int:
    if args.full and args.tests:
        raise TestbedError("--full and --tests: choose one (--full is every test but udp-rr)")
    opt = harness.Options(
        topo=args.topo, modes=_csv(args.modes), paths=_csv(args.paths),
        tests=["full"] if args.full else _csv(args.tests), controls=not args.no_controls,
        repeats=args.repeats, sessions=args.sessions, slices=args.slices,
        slice_ms=args.slice_ms,
        duration=args.duration,
        streams=args.streams, udp_rate=args.udp_rate, mtu=args.mtu,
        bandwidth=args.bandwidth, delay=args.delay, out=args.out, warmup=not args.no_warmup,
        label=args.label or "", underlay=args.underlay, family=args.family)
    run_dir, summary, skipped = harness.run(opt)
    for mode, reason in skipped.items():
        print(f"mode {mode} left out: {reason}")
    modes = [m for m in ["bare"] + (opt.modes or mode_names()) if m not in skipped]
    modes += [harness.AA_MODE] + sorted({r["mode"] for r in summary["rows"]} - set(modes))
    print(report.summary_table(summary, list(dict.fromkeys(modes))))
    print(report.comparison_tables(summary))
    print(report.steal_line(summary))
    print(report.retry_line(json.load(open(os.path.join(run_dir, "samples.json")))))
    if not args.no_plot:
        plot_run(str(run_dir))
    print(f"results: {run_dir}")
    return 130 if summary["status"] == "interrupted" else 0


def cmd_plot(args: argparse.Namespace) -> int:
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
