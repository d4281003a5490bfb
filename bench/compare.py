"""Paired comparisons of a run: every mode against bare, every pair of modes on one path, each
with a 95 % confidence interval, the run's noise floor, and a verdict.

Each sample of a mode carries the value of the bare underlay measured next to it (the mean of
the bare slices just before and after it; see slicing.py), so a comparison is made of paired
ratios: r_i = mode_i / bare_i. The ratio reported is their geometric mean, with a Student-t
interval on log r (the machine's speed moves the two alike and cancels in r). Two modes on the
same path are compared through their ratios to bare: log(A/B) = mean log r_A - mean log r_B,
its interval from both variances (Welch).

The noise floor is what identical datapaths show: a path measured a second time as if it
were a mode (its interval against the bare turns), or two modes with one datapath (compared
with each other); the widest distance of such an interval from 1 is the floor. A comparison is
`same` when its interval contains 1 or lies within 1 ± floor; otherwise `higher` or `lower`
(the mode's value above or below the other's — for latency, higher is slower).
"""
import math
import statistics
from collections import defaultdict
from itertools import combinations

T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26,
       10: 2.23, 12: 2.18, 15: 2.13, 20: 2.09, 30: 2.04, 60: 2.00}
COMPARED = {"tcp-1": ("gbps",), "tcp-n": ("gbps",), "udp": ("gbps",),
            "tcp-rr": ("p50_us", "p99_us"), "udp-rr": ("p50_us", "p99_us"),
            "icmp": ("rtt_p50_ms",)}


def t95(df):
    """Two-sided 95 % Student-t quantile for df degrees of freedom (table, conservative)."""
    if df <= 0:
        return float("inf")
    known = [d for d in T95 if d <= df]
    return T95[max(known)] if df < 60 else 1.96


def log_ratios(samples):
    """{(mode, path, test, metric): [log(value / paired bare)]} of every successful paired
    sample, read once for all the comparisons of a run."""
    out = defaultdict(list)
    for s in samples:
        if not s["ok"] or not s.get("baseline"):
            continue
        for metric in COMPARED.get(s["test"], ()):
            value, base = s["metrics"].get(metric), s["baseline"].get(metric)
            if value and base and value > 0 and base > 0:
                out[(s["mode"], s["path"], s["test"], metric)].append(math.log(value / base))
    return dict(out)


def interval(logs):
    """(ratio, low, high) of a list of log ratios; None with fewer than two."""
    if len(logs) < 2:
        return None
    mean, sd = statistics.fmean(logs), statistics.stdev(logs)
    half = t95(len(logs) - 1) * sd / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def difference(logs_a, logs_b):
    """(ratio A/B, low, high) from two lists of log ratios to the same baseline (Welch)."""
    if len(logs_a) < 2 or len(logs_b) < 2:
        return None
    va, vb = statistics.variance(logs_a) / len(logs_a), statistics.variance(logs_b) / len(logs_b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va ** 2 / (len(logs_a) - 1)) + (vb ** 2 / (len(logs_b) - 1))) \
        if va + vb > 0 else len(logs_a) + len(logs_b) - 2
    diff = statistics.fmean(logs_a) - statistics.fmean(logs_b)
    half = t95(int(df)) * se
    return math.exp(diff), math.exp(diff - half), math.exp(diff + half)


def verdict(low, high, floor):
    if low <= 1.0 <= high or (floor is not None and 1 - floor <= low and high <= 1 + floor):
        return "same"
    return "higher" if low > 1.0 else "lower"


def _entry(path, test, metric, a, b, found):
    ratio, low, high = found
    return {"path": path, "test": test, "metric": metric, "mode_a": a, "mode_b": b,
            "ratio": ratio, "ci_low": low, "ci_high": high}


def noise_floor(logs, aa_groups):
    """{(test, metric): floor} from the A/A controls: [(path, [modes])], one mode being a path
    measured twice (the copy against the bare turns), several being modes with one datapath."""
    floors = defaultdict(float)
    for path, modes in aa_groups:
        for test, metrics in COMPARED.items():
            for metric in metrics:
                def of(mode):
                    return logs.get((mode, path, test, metric), [])
                found = [interval(of(modes[0]))] if len(modes) == 1 else \
                    [difference(of(a), of(b)) for a, b in combinations(sorted(modes), 2)]
                for _ratio, low, high in filter(None, found):
                    floors[(test, metric)] = max(floors[(test, metric)], 1 - low, high - 1)
    return dict(floors)


def comparisons(samples, baselines, aa_groups, bare="bare"):
    """(comparisons, noise floor). baselines: {pod path: the bare path it is paired with}."""
    logs = log_ratios(samples)
    floor = noise_floor(logs, aa_groups)
    out = []
    for (mode, path, test, metric), values in sorted(logs.items()):
        found = interval(values)
        if found:
            out.append(_entry(path, test, metric, mode, bare, found))
    by_path = defaultdict(set)
    for mode, path, test, metric in logs:
        by_path[(path, test, metric)].add(mode)
    for (path, test, metric), modes in sorted(by_path.items()):
        for a, b in combinations(sorted(modes), 2):
            found = difference(logs[(a, path, test, metric)], logs[(b, path, test, metric)])
            if found:
                out.append(_entry(path, test, metric, a, b, found))
    for c in out:
        c["bare_path"] = baselines.get(c["path"], "") if c["mode_b"] == bare else ""
        c["verdict"] = verdict(c["ci_low"], c["ci_high"], floor.get((c["test"], c["metric"])))
    return out, [{"test": t, "metric": m, "floor": f} for (t, m), f in sorted(floor.items())]
