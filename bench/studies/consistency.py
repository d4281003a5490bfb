"""Do several benchmark runs tell the same story? Read from their summary.json and samples.

    python -m bench.studies.consistency RUN_DIR RUN_DIR [RUN_DIR ...]

For every mode and path, each run's one-stream and request/response ratio to bare with its
interval, how far the runs spread (max/min), how wide the intervals are, and their coverage:
the share of ordered pairs of runs (A, B) in which A's ratio lies inside B's interval. Then the
controls in every run: the pod paths' A/A (vxlan against vxlan-again: `same` and within ±5 %),
the node path's (bare-again), flannel's modes at one pod MTU on one node (`same`), and how long
each run took. Last, any pair of modes called `higher` in one run and `lower` in another;
and, from the runs' samples, how much a run's ratio varies beyond its sessions' spread (the
between-run component compare.py adds to the next-run interval), and the ratios of the modes
whose daemons were pinned, by where the daemons and the client ran (the placements every run
takes in turn, harness.py).
Prints Markdown tables, as docs/benchmarks.md shows them.
"""
import argparse
import json
import math
import os
import statistics
import sys
from collections import defaultdict
from itertools import permutations

from bench.engine.compare import BETWEEN_RUN_SD, log_ratios, session_means
from bench.engine.controls import checks
from bench.engine.results import load_run

HEADLINE = (("tcp-1", "gbps", "TCP 1 stream"), ("tcp-rr", "p50_us", "TCP RR p50"))
AA_WITHIN = 0.05   # a pod A/A ratio further than this from 1 fails the check
TIME_BUDGET_S = 600


def load(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def to_bare(summary: dict, test: str, metric: str,
            key: tuple[str, str] = ("ci_low", "ci_high")) -> dict[tuple[str, str], tuple]:
    """{(mode, path): (ratio, low, high)} of a run's comparisons with bare; key names the
    interval: the confidence interval, or ("next_low", "next_high"), the next run's."""
    return {(c["mode_a"], c["path"]): (c["ratio"], c[key[0]], c[key[1]])
            for c in summary.get("comparisons", [])
            if c["mode_b"] == "bare" and (c["test"], c["metric"]) == (test, metric)
            and key[0] in c}


def between(summary: dict, path: str, test: str, metric: str, a: str,
            b: str) -> dict | None:
    """A run's comparison of modes a and b on a path, oriented a/b; None if not measured."""
    for c in summary.get("comparisons", []):
        if (c["path"], c["test"], c["metric"]) != (path, test, metric):
            continue
        if (c["mode_a"], c["mode_b"]) == (a, b):
            return c
        if (c["mode_a"], c["mode_b"]) == (b, a):
            return {**c, "mode_a": a, "mode_b": b, "ratio": 1 / c["ratio"],
                    "ci_low": 1 / c["ci_high"], "ci_high": 1 / c["ci_low"],
                    "verdict": {"higher": "lower", "lower": "higher"}.get(c["verdict"],
                                                                         c["verdict"])}
    return None


def coverage(found: list[tuple[float, float, float]]) -> tuple[int, int]:
    """(pairs covered, pairs) over ordered pairs of runs: A's ratio inside B's interval."""
    pairs = list(permutations(found, 2))
    covered = sum(1 for (ra, _la, _ha), (_rb, lb, hb) in pairs if lb <= ra <= hb)
    return covered, len(pairs)


def half_width(ratio: float, low: float, high: float) -> float:
    return max(high / ratio - 1, 1 - low / ratio)


def _cell(r):
    return f"{r[0]:.3f} [{r[1]:.3f}–{r[2]:.3f}]"


def ratio_table(summaries: list[dict], test: str, metric: str,
                title: str) -> tuple[list[str], int, int]:
    """Markdown rows of every mode and path's ratio to bare in each run; (lines, covered,
    pairs) of the coverage by the next run's intervals."""
    per_run = [to_bare(s, test, metric) for s in summaries]
    per_run_next = [to_bare(s, test, metric, ("next_low", "next_high")) for s in summaries]
    keys = sorted(set().union(*per_run), key=lambda k: (k[1], k[0]))
    head = ["mode", "path"] + [f"run {i + 1}" for i in range(len(summaries))] + [
        "spread (max/min)", "median ± of intervals", "in the other's interval",
        "in the other's next-run interval"]
    lines = [f"{title}, ratio to bare [95 % confidence interval]:", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals = {"ci": [0, 0], "next": [0, 0]}
    for key in keys:
        found = [run.get(key) for run in per_run]
        present = [f for f in found if f]
        if len(present) < 2:
            continue
        cells = []
        for name, runs in (("ci", per_run), ("next", per_run_next)):
            covered, pairs = coverage([run[key] for run in runs if key in run])
            totals[name][0] += covered
            totals[name][1] += pairs
            cells.append(f"{covered}/{pairs}")
        ratios = [f[0] for f in present]
        spread = max(ratios) / min(ratios) - 1
        widths = statistics.median(half_width(*f) for f in present)
        lines.append("| " + " | ".join(
            [key[0], key[1]] + [_cell(f) if f else "–" for f in found] +
            [f"{spread * 100:.1f} %", f"±{widths * 100:.1f} %"] + cells) + " |")
    lines.append("")
    for name, what in (("ci", "confidence interval"),
                       ("next", "next-run interval (the one to hold another run against)")):
        covered, pairs = totals[name]
        share = covered / pairs if pairs else 0.0
        lines.append(f"coverage by the {what}: {covered} of {pairs} ordered pairs of runs "
                     f"({share * 100:.0f} %) have one run's ratio inside the other's interval")
    return lines, totals["next"][0], totals["next"][1]


def controls_table(summaries: list[dict]) -> tuple[list[str], bool]:
    """Markdown rows of the controls in each run, and the list of checks that failed."""
    head = ["control", "path", "test"] + [f"run {i + 1}" for i in range(len(summaries))]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    failed = []
    named = set().union(*({c["mode_a"] for c in s.get("comparisons", [])} for s in summaries))
    for check in checks(named):
        path, a, b, within = check.path, check.a, check.b, check.within
        for test, metric, _title in HEADLINE:
            cells = []
            for i, s in enumerate(summaries):
                c = between(s, path, test, metric, a, b)
                if not c:
                    cells.append("–")
                    continue
                ok = c["verdict"] == "same" and (not within or
                                                 abs(c["ratio"] - 1) <= AA_WITHIN)
                if not ok:
                    failed.append(f"run {i + 1}: {a}/{b} {path} {test} {c['ratio']:.3f} "
                                  f"{c['verdict']}")
                cells.append(f"{_cell((c['ratio'], c['ci_low'], c['ci_high']))} "
                             f"{c['verdict']}{'' if ok else ' ✗'}")
            lines.append("| " + " | ".join([f"{a} / {b}", path, test] + cells) + " |")
    return lines, failed


def flips(summaries: list[dict]) -> list:
    seen = defaultdict(set)
    for summary in summaries:
        for c in summary.get("comparisons", []):
            if c["verdict"] != "same":
                seen[(c["path"], c["test"], c["metric"], c["mode_a"], c["mode_b"])].add(
                    c["verdict"])
    return [k for k, v in sorted(seen.items()) if v == {"higher", "lower"}]


def placement_of(sample: dict) -> str:
    """Where a sample's daemons ran relative to its two ends: for each node on its path (the
    client's and the server's), whether that node's daemons shared the client's CPU or the
    server's."""
    client = sample["placement"][0]
    ends = (sample.get("client", ""), sample.get("server", ""))
    by_node = {}
    for label, cpu in sorted(sample["daemon_cpus"].items()):
        node = label.partition("@")[2]
        if any(end == node or end.startswith(node + "-") for end in ends):
            by_node.setdefault(node, cpu)
    return "; ".join(f"{node}: {'client' if cpu == client else 'server'}'s CPU"
                     for node, cpu in sorted(by_node.items())) or "no daemon on the path"


def placement_table(samples_by_run: list[list[dict]], test: str = "tcp-rr",
                    metric: str = "p50_us") -> list[str]:
    """Markdown rows: for each mode and path whose daemons were pinned, its ratio to bare over
    every run's sessions of one placement (geometric mean, SD between sessions, sessions)."""
    found = defaultdict(list)  # (mode, path, placement) -> [session mean log ratio]
    for run, samples in enumerate(samples_by_run):
        placed = [s for s in samples if s.get("test") == test and s.get("daemon_cpus")
                  and s.get("placement")]
        where = {(s["mode"], s["path"], s["session"]): placement_of(s) for s in placed}
        for (mode, path, t, m), by_session in log_ratios(placed).items():
            if (t, m) != (test, metric):
                continue
            for session, value in session_means(by_session).items():
                found[(mode, path, where[(mode, path, session)])].append(value)
    lines = ["| mode | path | placement | ratio to bare | SD between sessions | sessions |",
             "|---|---|---|---|---|---|"]
    for (mode, path, placement), values in sorted(found.items()):
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {mode} | {path} | {placement} | "
                     f"{math.exp(statistics.fmean(values)):.3f} | {sd * 100:.1f} % | "
                     f"{len(values)} |")
    return lines if found else []


def between_run_sd(samples_by_run: list[list[dict]], test: str,
                   metric: str) -> tuple[float | None, int]:
    """(SD, flows) of what a run's ratio to bare varies by beyond its sessions' spread, pooled
    over the flows measured in every run: per flow, the variance of its runs' means less the
    mean squared standard error of one run's mean (a one-way analysis of variance), averaged
    over flows, floored at 0. Flows whose daemons were pinned are left out: their sessions
    take four placements on purpose, which widens each run's own interval instead."""
    per_flow = defaultdict(list)  # (mode, path) -> [[session means] of each run]
    pinned = set()
    for samples in samples_by_run:
        pinned |= {(s["mode"], s["path"]) for s in samples if s.get("daemon_cpus")}
        for (mode, path, t, m), by_session in log_ratios(samples).items():
            if (t, m) == (test, metric):
                per_flow[(mode, path)].append(list(session_means(by_session).values()))
    excess = []
    for flow, runs in per_flow.items():
        runs = [r for r in runs if len(r) >= 2]
        if flow in pinned or len(runs) < 2 or len(runs) < len(samples_by_run):
            continue
        means = [statistics.fmean(r) for r in runs]
        squared_se = statistics.fmean(statistics.variance(r) / len(r) for r in runs)
        excess.append(statistics.variance(means) - squared_se)
    if not excess:
        return None, 0
    return math.sqrt(max(0.0, statistics.fmean(excess))), len(excess)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    summaries = [load(r) for r in args.runs]
    for i, run in enumerate(args.runs):
        s = summaries[i]
        took = f"{s['elapsed_s']:.0f} s" if "elapsed_s" in s else "time not recorded"
        print(f"run {i + 1}: {os.path.basename(os.path.normpath(run))} ({took})")
    print()
    for test, metric, title in HEADLINE:
        lines, _covered, _pairs = ratio_table(summaries, test, metric, title)
        print("\n".join(lines) + "\n")
    lines, failed = controls_table(summaries)
    print("Controls (A/B [95 % interval] verdict; ✗: not `same`, or an A/A beyond ±5 %):\n")
    print("\n".join(lines) + "\n")
    print("controls: " + ("every check held" if not failed else
                          f"{len(failed)} failed: " + "; ".join(failed)))
    slow = [f"run {i + 1} {s['elapsed_s']:.0f} s" for i, s in enumerate(summaries)
            if s.get("elapsed_s", 0) > TIME_BUDGET_S]
    print("time: " + ("every run within " if not slow else "over ") +
          f"{TIME_BUDGET_S} s" + (": " + ", ".join(slow) if slow else ""))
    found = flips(summaries)
    print(f"across {len(summaries)} runs: " + ("no pair is higher in one run and lower in "
                                               "another" if not found else
                                               f"{len(found)} flips: {found}"))
    samples_by_run = [load_run(r)["samples"] for r in args.runs]
    for test, metric, title in HEADLINE:
        sd, flows = between_run_sd(samples_by_run, test, metric)
        if sd is not None:
            print(f"between runs, {title}: a run's ratio varies by SD {sd * 100:.2f} % beyond "
                  f"its sessions' spread (pooled over {flows} flows without pinned daemons; "
                  f"bench/engine/compare.py adds {BETWEEN_RUN_SD.get(test, 0) * 100:.2f} %)")
    lines = placement_table(samples_by_run)
    if lines:
        print("\nTCP RR p50 ratio to bare by placement, over every run's sessions:\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
