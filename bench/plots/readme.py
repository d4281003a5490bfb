"""The README's results: its table and picture made anew from one benchmark run.

    python -m bench.plots.readme RUN_DIR [--readme README.md] [--into docs/results]

Copies the run's files (machine facts, samples, summary, plots) to docs/results/<run>/ so that
anyone can re-plot it, and rewrites the part of the README between the two markers below with
that run's ratios to bare, its controls, its id and the CPU it ran on. Every figure comes from
that one run.
"""
import argparse
import os
import shutil
import sys

from bench.engine.controls import EQUAL_MTU_OF, checks
from bench.engine.results import load_run
from bench.studies.consistency import between
from testbed.errors import TestbedError

BEGIN = "<!-- bench-results: made by `python -m bench.plots.readme RUN`; edits here are lost -->"
END = "<!-- /bench-results -->"
KEPT = ("machine.json", "summary.json", "samples.json", "ratio.png", "ratio.svg",
        "throughput.png", "throughput.svg", "latency.png", "latency.svg", "cpu.png", "cpu.svg")
COLUMNS = (("pod-same-node", "tcp-1", "gbps"), ("pod-same-node", "tcp-rr", "p50_us"),
           ("pod-cross-node", "tcp-1", "gbps"), ("pod-cross-node", "tcp-rr", "p50_us"))


def _ratio(c):
    if not c:
        return "–"
    mark = "" if c["verdict"] == "same" else f" {c['verdict']}"
    return f"{c['ratio']:.2f}× [{c['ci_low']:.2f}–{c['ci_high']:.2f}]{mark}"


def results_section(run: dict, picture: str) -> str:
    """The Markdown between the markers, from a loaded run (bench.engine.results.load_run)."""
    machine, summary = run["machine"], run["summary"]
    modes = [m for m in machine.get("modes", []) if m != "bare"]
    took = f", measured in {summary['elapsed_s'] / 60:.1f} min" if "elapsed_s" in summary \
        else ""
    opts = machine.get("options", {})
    lines = [
        BEGIN,
        f"Run `{run['name']}` of `make bench`: {machine.get('cpu_model') or 'CPU unknown'}, "
        f"{machine.get('cores')} vCPUs, kernel {machine.get('kernel')}, commit "
        f"`{(machine.get('commit') or '?')[:7]}`{took}. Ratios to the bare underlay (node to "
        f"node) in the same run, with 95 % intervals over {opts.get('sessions', '?')} sessions "
        "of fresh tool processes; a verdict is written where it is not `same`. Ratios of this "
        "kind depend on the CPU: see [benchmarks](docs/benchmarks.md) for other machines.",
        "",
        f"![ratio to bare]({picture})",
        "",
        "| mode | same node: TCP 1 stream | same node: TCP RR p50 | across nodes: TCP 1 stream "
        "| across nodes: TCP RR p50 |",
        "|---|---|---|---|---|",
    ]
    for mode in modes:
        cells = [_ratio(between(summary, path, test, metric, mode, "bare"))
                 for path, test, metric in COLUMNS]
        if any(c != "–" for c in cells):
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", "Controls, each of which must read `same` (A/B, same run):", "",
              "| control | path | TCP 1 stream | TCP RR p50 |", "|---|---|---|---|"]
    named = {c["mode_a"] for c in summary.get("comparisons", [])}
    shown = [c for c in checks(named) if c.kind != "mtu" or c.b == EQUAL_MTU_OF]
    for check in shown:
        cells = [_ratio(between(summary, check.path, test, metric, check.a, check.b))
                 for test, metric in (("tcp-1", "gbps"), ("tcp-rr", "p50_us"))]
        if any(c != "–" for c in cells):
            lines.append(f"| {check.title} | {check.path} | " + " | ".join(cells) + " |")
    lines.append(END)
    return "\n".join(lines)


def replace_section(text: str, section: str, readme: str = "README.md") -> str:
    if BEGIN not in text or END not in text:
        raise TestbedError(f"{readme}: no results markers ({BEGIN!r} ... {END!r}) to replace")
    head, rest = text.split(BEGIN, 1)
    return head + section + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--into", default=os.path.join("docs", "results"))
    args = parser.parse_args(argv)
    try:
        run = load_run(args.run)
        kept = os.path.join(args.into, run["name"])
        if os.path.abspath(kept) != os.path.abspath(args.run):
            os.makedirs(kept, exist_ok=True)
            for name in KEPT:
                if os.path.exists(os.path.join(args.run, name)):
                    shutil.copy2(os.path.join(args.run, name), kept)
        picture = os.path.relpath(os.path.join(kept, "ratio.png"),
                                  os.path.dirname(os.path.abspath(args.readme)) or ".")
        with open(args.readme) as f:
            text = f.read()
        text = replace_section(text, results_section(run, picture), args.readme)
        with open(args.readme, "w") as f:
            f.write(text)
    except TestbedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.readme}: results of {run['name']} (files in {kept})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
