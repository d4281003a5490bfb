"""Do several benchmark runs tell the same story? Read from their summary.json files alone.

    python -m bench.consistency RUN_DIR RUN_DIR [RUN_DIR ...]

For each run: the A/A control (the flannel modes pod to pod on one node: verdicts against each
other, and how far apart their medians are), the width of every cross-node ratio to bare, and
the physics' order for request/response across nodes (vxlan >= host-gw >= bare). Across runs:
any pair of modes called `higher` in one run and `lower` in another.
"""
import argparse
import json
import os
import sys
from collections import defaultdict

AA_MODES = ("host-gw", "vxlan", "udp")
AA_METRICS = (("tcp-1", "gbps"), ("tcp-rr", "p50_us"), ("icmp", "rtt_p50_ms"))
PRECISION = (("tcp-1", "gbps"), ("tcp-rr", "p50_us"))


def load(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def _median(summary, mode, path, test, metric, key="median"):
    return next((r.get(key) for r in summary["rows"] if (r["mode"], r["path"], r["test"],
                                                         r["metric"]) == (mode, path, test,
                                                                          metric)), None)


def _spread(values):
    """'a, b, c (max/min +x %)' of the values that are there."""
    values = [v for v in values if v]
    if not values:
        return "none"
    return (f"{', '.join(f'{v:.3g}' for v in values)} "
            f"(max/min {(max(values) / min(values) - 1) * 100:+.1f} %)")


def report(name, summary):
    lines = [f"== {name}"]
    comps = summary.get("comparisons", [])
    for test, metric in AA_METRICS:
        verdicts = [f"{c['mode_a']}/{c['mode_b']} {c['ratio']:.3f} {c['verdict']}"
                    for c in comps if c["path"] == "pod-same-node" and
                    (c["test"], c["metric"]) == (test, metric) and
                    {c["mode_a"], c["mode_b"]} <= set(AA_MODES)]
        raw, paired = ([_median(summary, mode, "pod-same-node", test, metric, key)
                        for mode in AA_MODES] for key in ("median", "paired_median"))
        lines.append(f"A/A {test} {metric}: medians {_spread(raw)}; paired medians "
                     f"{_spread(paired)}; {'; '.join(verdicts)}")
    for test, metric in PRECISION:
        for c in comps:
            if c["mode_b"] == "bare" and c["path"] == "pod-cross-node" and \
                    (c["test"], c["metric"]) == (test, metric):
                half = max(c["ratio"] - c["ci_low"], c["ci_high"] - c["ratio"]) / c["ratio"]
                lines.append(f"precision {test} {metric} {c['mode_a']}/bare: {c['ratio']:.3f} "
                             f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] ±{half * 100:.1f} % "
                             f"{c['verdict']}")
    order = {c["mode_a"]: c for c in comps if c["mode_b"] == "bare" and
             c["path"] == "pod-cross-node" and (c["test"], c["metric"]) == ("tcp-rr", "p50_us")}
    pair = next((c for c in comps if {c["mode_a"], c["mode_b"]} == {"host-gw", "vxlan"} and
                 c["path"] == "pod-cross-node" and
                 (c["test"], c["metric"]) == ("tcp-rr", "p50_us")), None)
    if "host-gw" in order and "vxlan" in order:
        wrong = [f"{m} below bare ({order[m]['verdict']})" for m in ("host-gw", "vxlan")
                 if order[m]["ratio"] < 1 and order[m]["verdict"] != "same"]
        if pair and pair["verdict"] != "same" and \
                (pair["mode_a"] == "vxlan") == (pair["verdict"] == "lower"):
            wrong.append(f"vxlan below host-gw ({pair['verdict']})")
        lines.append("physics tcp-rr cross-node vxlan >= host-gw >= bare: " +
                     ("contradicted: " + "; ".join(wrong) if wrong else "respected"))
    floor = ", ".join(f"{f['test']} {f['metric']} ±{f['floor'] * 100:.1f} %"
                      for f in summary.get("noise_floor", []))
    lines.append(f"noise floor: {floor or 'none'}")
    return lines


def flips(summaries):
    seen = defaultdict(set)
    for summary in summaries:
        for c in summary.get("comparisons", []):
            if c["verdict"] != "same":
                seen[(c["path"], c["test"], c["metric"], c["mode_a"], c["mode_b"])].add(
                    c["verdict"])
    return [k for k, v in sorted(seen.items()) if v == {"higher", "lower"}]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    summaries = [load(r) for r in args.runs]
    for run, summary in zip(args.runs, summaries):
        print("\n".join(report(os.path.basename(os.path.normpath(run)), summary)))
    found = flips(summaries)
    print(f"== across {len(summaries)} runs: " + ("no pair is higher in one run and lower in "
                                                   "another" if not found else
                                                   f"{len(found)} flips: {found}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
