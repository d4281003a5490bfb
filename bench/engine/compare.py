"""Paired comparisons of a run: every mode against bare, every pair of modes on one path, each
with a 95 % confidence interval, the noise floor of each path, and a verdict.

Each sample of a mode carries the value of the bare underlay measured next to it (the mean of
the bare slices just before and after it; see slicing.py), so a comparison is made of paired
ratios: r_i = mode_i / bare_i, reported as their geometric mean.

The unit of replication is the session, not the turn. A session is one set of fresh tool
processes measured in turns for a while; the turns of one session share what was fixed when it
started and what the machine was like meanwhile, and on this kind of machine that moves a
request/response ratio by ±5 % from one session to the next while its turns agree to ±0.1-2 %
(docs/benchmarks.md, *Why the ratios moved between runs*). So each session gives one value,
the mean of its turns' log ratios, and the interval is a Student-t interval over the sessions'
values: it covers what varies between sessions, not only what varies between turns. Two modes
on one path are compared session by session (each session measured both): log(A/B)_k =
mean log r_A,k - mean log r_B,k, with a t interval over sessions. Samples without a session
(runs made before sessions existed) are taken as one session each turn: the old per-turn
interval, Welch for pairs.

The noise floor of a path is what identical datapaths show on it: the bare path measured a
second time as if it were a mode (`bare-again`, node to node), and one mode built twice in two
clusters (`vxlan` and `vxlan-again`, pod paths). The widest distance of such an interval from 1
is the floor of that path. A comparison is `same` when its interval contains 1 or lies within
1 ± its path's floor; otherwise `higher` or `lower` (the first mode's value above or below the
other's — for latency, higher is slower). An A/A comparison is never judged with its own
floor (it would read `same` whatever it showed), but with the widest floor the run's other
A/A controls set for that test.

Beside each confidence interval a comparison carries the interval in which the next run's
ratio should fall (`next_low`, `next_high`), the interval to hold another run's figure against.
Both runs' ratios vary, so it is √2 wider; and a run's ratio also varies by what its sessions
share and one run cannot see: the clusters it built, the machine's state over its ten minutes.
That between-run component (BETWEEN_RUN_SD, per test) was measured on the reference machine
by `python -m bench.studies.consistency` over runs of every mode (the SD of the runs' ratios
beyond what their sessions' spread explains) and is added to each run's own: the next-run
interval's half width is t · √(2 · (se² + between²)) in log terms, for a pair of modes
2 · between².
"""
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from itertools import combinations

Sessions = dict[str, list[float]]  # a flow's log ratios by session
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26,
       10: 2.23, 12: 2.18, 15: 2.13, 20: 2.09, 30: 2.04, 60: 2.00}
# SD (log ratio) of a run's ratio to bare beyond its sessions' spread, by test, as
# bench.studies.consistency estimates it over ten runs on the reference machine (docs/benchmarks.md,
# *Intervals that hold on the next run*): none found for one stream's rate
BETWEEN_RUN_SD = {"tcp-1": 0.0, "tcp-rr": 0.0055}
COMPARED = {"tcp-1": ("gbps",), "tcp-n": ("gbps",), "udp": ("gbps",),
            "tcp-rr": ("p50_us", "p99_us"), "udp-rr": ("p50_us", "p99_us"),
            "icmp": ("rtt_p50_ms",)}


def t95(df: int) -> float:
    """Two-sided 95 % Student-t quantile for df degrees of freedom (table, conservative)."""
    if df <= 0:
        return float("inf")
    known = [d for d in T95 if d <= df]
    return T95[max(known)] if df < 60 else 1.96


def log_ratios(samples: list[dict]) -> dict[tuple, Sessions]:
    """{(mode, path, test, metric): {session: [log(value / paired bare)]}} of every successful
    paired sample. A sample without a session is a session of its own."""
    out = defaultdict(lambda: defaultdict(list))
    for i, s in enumerate(samples):
        if not s["ok"] or not s.get("baseline"):
            continue
        session = s.get("session", ("turn", i))
        for metric in COMPARED.get(s["test"], ()):
            value, base = s["metrics"].get(metric), s["baseline"].get(metric)
            if value and base and value > 0 and base > 0:
                out[(s["mode"], s["path"], s["test"], metric)][session].append(
                    math.log(value / base))
    return {k: dict(v) for k, v in out.items()}


def session_means(by_session: Sessions) -> dict[str, float]:
    """{session: mean log ratio} of one flow."""
    return {k: statistics.fmean(v) for k, v in by_session.items() if v}


def t_interval(values: list[float]) -> tuple[float, float, float] | None:
    """(ratio, low, high) of a list of log values; None with fewer than two."""
    found = t_intervals(values)
    return found[:3] if found else None


def t_intervals(values: list[float], between_sd: float = 0.0) -> tuple[float, ...] | None:
    """(ratio, low, high, next low, next high) of a list of log values, None with fewer than
    two: the 95 % confidence interval of their mean, and the interval in which the mean of as
    many values measured again falls with 95 % (a prediction interval: both means vary, each
    by its standard error and by between_sd, what varies from run to run only): where the
    next run's ratio should land."""
    if len(values) < 2:
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    t, se = t95(len(values) - 1), sd / math.sqrt(len(values))
    half = t * se
    again = t * math.sqrt(2 * (se ** 2 + between_sd ** 2))
    return (math.exp(mean), math.exp(mean - half), math.exp(mean + half),
            math.exp(mean - again), math.exp(mean + again))


def interval(by_session: Sessions | list[float]) -> tuple[float, float, float] | None:
    """(ratio, low, high) of one flow's log ratios, over its sessions' means; a list of log
    ratios (one session each) is taken as it is."""
    found = intervals(by_session)
    return found[:3] if found else None


def intervals(by_session: Sessions | list[float],
              between_sd: float = 0.0) -> tuple[float, ...] | None:
    """t_intervals of one flow's log ratios over its sessions' means."""
    if not isinstance(by_session, dict):
        return t_intervals(list(by_session), between_sd)
    return t_intervals(list(session_means(by_session).values()), between_sd)


def _welch(logs_a, logs_b):
    if len(logs_a) < 2 or len(logs_b) < 2:
        return None
    va, vb = statistics.variance(logs_a) / len(logs_a), statistics.variance(logs_b) / len(logs_b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va ** 2 / (len(logs_a) - 1)) + (vb ** 2 / (len(logs_b) - 1))) \
        if va + vb > 0 else len(logs_a) + len(logs_b) - 2
    diff = statistics.fmean(logs_a) - statistics.fmean(logs_b)
    half = t95(int(df)) * se
    return math.exp(diff), math.exp(diff - half), math.exp(diff + half)


def difference(a: Sessions, b: Sessions) -> tuple[float, float, float] | None:
    """(ratio A/B, low, high) of two flows' log ratios to the same baseline ({session: [logs]}):
    session by session where both have sessions in common, else Welch over turns."""
    found = differences(a, b)
    return found[:3] if found else None


def differences(a: Sessions, b: Sessions,
                between_sd: float = 0.0) -> tuple[float | None, ...] | None:
    """difference() with the next run's interval after it (None for Welch's, over turns);
    between_sd is each flow's between-run component."""
    means_a, means_b = session_means(a), session_means(b)
    common = sorted(set(means_a) & set(means_b), key=str)
    if len(common) >= 2 and not any(isinstance(k, tuple) for k in common):
        return t_intervals([means_a[k] - means_b[k] for k in common],
                           math.sqrt(2) * between_sd)
    found = _welch([x for v in a.values() for x in v], [x for v in b.values() for x in v])
    return found + (None, None) if found else None


def verdict(low: float, high: float, floor: float | None) -> str:
    if low <= 1.0 <= high or (floor is not None and 1 - floor <= low and high <= 1 + floor):
        return "same"
    return "higher" if low > 1.0 else "lower"


def _entry(path, test, metric, a, b, found, sessions):
    ratio, low, high, next_low, next_high = found
    out = {"path": path, "test": test, "metric": metric, "mode_a": a, "mode_b": b,
           "ratio": ratio, "ci_low": low, "ci_high": high, "sessions": sessions}
    if next_low is not None:
        out.update(next_low=next_low, next_high=next_high)
    return out


def _aa_pairs(aa_groups, bare):
    """{(path, {mode_a, mode_b})} of the A/A comparisons themselves."""
    out = set()
    for path, modes in aa_groups:
        if len(modes) == 1:
            out.add((path, frozenset((modes[0], bare))))
        for a, b in combinations(modes, 2):
            out.add((path, frozenset((a, b))))
    return out


def noise_floor(logs: dict[tuple, Sessions],
                aa_groups: Iterable[tuple[str, list[str]]]) -> dict[tuple[str, str, str], float]:
    """{(path, test, metric): floor} from the A/A controls: [(path, [modes])], one mode being a
    path measured twice (the copy against the bare turns), several being one mode built in
    several clusters (compared with each other)."""
    floors = {}
    for path, modes in aa_groups:
        for test, metrics in COMPARED.items():
            for metric in metrics:
                def of(mode):
                    return logs.get((mode, path, test, metric), {})
                found = [interval(of(modes[0]))] if len(modes) == 1 else \
                    [difference(of(a), of(b)) for a, b in combinations(sorted(modes), 2)]
                for _ratio, low, high in filter(None, found):
                    key = (path, test, metric)
                    floors[key] = max(floors.get(key, 0.0), 1 - low, high - 1)
    return floors


def floor_for(floors: dict[tuple[str, str, str], float], path: str, test: str, metric: str,
              aa_control: bool = False) -> float | None:
    """The floor a comparison on `path` is judged with: the path's own; for a path without an
    A/A control, the widest of its test's. An A/A comparison is judged with the widest floor
    of the other paths' controls, never with its own (which would call it `same` whatever it
    showed); with no other control, it must hold 1."""
    if (path, test, metric) in floors and not aa_control:
        return floors[(path, test, metric)]
    others = [f for (p, t, m), f in floors.items() if (t, m) == (test, metric) and
              not (aa_control and p == path)]
    return max(others) if others else None


def comparisons(samples: list[dict], baselines: dict[str, str],
                aa_groups: Iterable[tuple[str, list[str]]],
                bare: str = "bare") -> tuple[list[dict], list[dict]]:
    """(comparisons, noise floor). baselines: {pod path: the bare path it is paired with}."""
    logs = log_ratios(samples)
    floors = noise_floor(logs, aa_groups)
    aa = _aa_pairs(aa_groups, bare)
    out = []
    for (mode, path, test, metric), values in sorted(logs.items()):
        found = intervals(values, BETWEEN_RUN_SD.get(test, 0.0))
        if found:
            out.append(_entry(path, test, metric, mode, bare, found, len(values)))
    by_path = defaultdict(set)
    for mode, path, test, metric in logs:
        by_path[(path, test, metric)].add(mode)
    for (path, test, metric), modes in sorted(by_path.items()):
        for a, b in combinations(sorted(modes), 2):
            la, lb = logs[(a, path, test, metric)], logs[(b, path, test, metric)]
            found = differences(la, lb, BETWEEN_RUN_SD.get(test, 0.0))
            if found:
                out.append(_entry(path, test, metric, a, b, found,
                                  len(set(la) & set(lb)) or min(len(la), len(lb))))
    for c in out:
        c["bare_path"] = baselines.get(c["path"], "") if c["mode_b"] == bare else ""
        c["aa_control"] = (c["path"], frozenset((c["mode_a"], c["mode_b"]))) in aa
        floor = floor_for(floors, c["path"], c["test"], c["metric"], c["aa_control"])
        c["verdict"] = verdict(c["ci_low"], c["ci_high"], floor)
    return out, [{"path": p, "test": t, "metric": m, "floor": f}
                 for (p, t, m), f in sorted(floors.items())]
