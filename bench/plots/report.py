"""The summary table printed at the end of a run (and by `testbed plot`)."""
from collections.abc import Iterable

from bench.engine.paths import PATHS
from testbed.api.tables import render_table

# (column title, test, metric, format)
COLUMNS = (
    ("TCP-1 Gbit/s", "tcp-1", "gbps", "{:.2f}"),
    ("TCP-N Gbit/s", "tcp-n", "gbps", "{:.2f}"),
    ("UDP Gbit/s", "udp", "gbps", "{:.2f}"),
    ("UDP loss %", "udp", "loss_pct", "{:.1f}"),
    ("TCP RR p50/p99 µs", "tcp-rr", ("p50_us", "p99_us"), "{:.1f}"),
    ("ICMP p50 ms", "icmp", "rtt_p50_ms", "{:.3f}"),
    ("CPU s/GB (TCP-1)", "tcp-1", "cpu_s_per_gb", "{:.2f}"),
)


def _index(summary):
    return {(r["mode"], r["path"], r["test"], r["metric"]): r for r in summary["rows"]}


def _cell(rows, mode, path, test, metric, fmt, with_ratio):
    metrics = metric if isinstance(metric, tuple) else (metric,)
    found = [rows.get((mode, path, test, m)) for m in metrics]
    if not all(found):
        return "-"
    text = "/".join(fmt.format(r["median"]) for r in found)
    ratio = found[0].get("ratio_to_bare")
    if with_ratio and ratio is not None:
        text += f" ({ratio:.2f}×)"
    return text


def summary_table(summary: dict, modes: list[str]) -> str:
    """One row per mode and path; throughput columns carry the ratio to bare in brackets."""
    rows = _index(summary)
    table = [("MODE", "PATH") + tuple(c[0] for c in COLUMNS)]
    for mode in modes:
        for path in PATHS:
            if not any(k[0] == mode and k[1] == path.name for k in rows):
                continue
            table.append((mode, path.name) + tuple(
                _cell(rows, mode, path.name, test, metric, fmt, metric == "gbps")
                for _, test, metric, fmt in COLUMNS))
    lines = [render_table(table), "(×) = ratio to the bare underlay on the same kind of path "
             "(node to node): the geometric mean of paired ratios, each turn against the bare "
             "turns around it; medians over turns"]
    for f in summary.get("failures", []):
        lines.append(f"FAILED {f['count']}× {f['mode']} {f['path']} {f['test']}: "
                     + "; ".join(f["errors"]))
    for na in summary.get("not_applicable", []):
        lines.append(f"not applicable: {na['mode']} {na['path']}: {na['reason']}")
    return "\n".join(lines)


def _ratio(c):
    return f"{c['ratio']:.2f}× [{c['ci_low']:.2f}–{c['ci_high']:.2f}]"


def comparison_tables(summary: dict, key_metrics: Iterable[tuple[str, str]] = (
        ("tcp-1", "gbps"), ("tcp-rr", "p50_us"))) -> str:
    """Every mode against bare (all compared metrics), then the pairs of modes on one path for
    the key metrics, each with its 95 % interval and verdict, and the noise floor."""
    found = summary.get("comparisons", [])
    if not found:
        return ""
    floors = summary.get("noise_floor", [])
    rows = [("MODE", "PATH", "TEST", "METRIC", "vs bare [95 % CI]", "VERDICT")]
    for c in found:
        if c["mode_b"] == "bare":
            rows.append((c["mode_a"], c["path"], c["test"], c["metric"], _ratio(c),
                         c["verdict"]))
    pairs = [("A", "B", "PATH", "TEST", "A/B [95 % CI]", "VERDICT")]
    for c in found:
        if c["mode_b"] != "bare" and (c["test"], c["metric"]) in key_metrics:
            pairs.append((c["mode_a"], c["mode_b"], c["path"], f"{c['test']} {c['metric']}",
                          _ratio(c), c["verdict"]))
    lines = ["paired comparisons:", render_table(rows)]
    if len(pairs) > 1:
        lines += ["", render_table(pairs)]
    lines.append("noise floor (identical datapaths measured as if different: the bare path "
                 "twice, vxlan built twice): " + (", ".join(
                     f"{f.get('path', 'all paths')} {f['test']} {f['metric']} "
                     f"±{f['floor'] * 100:.1f}%" for f in floors) or
                     "none measured (no A/A control was in this run)"))
    lines.append("verdict: same = the interval holds 1 or lies within its path's noise floor "
                 "(an A/A comparison: holds 1); higher/lower = the first mode's value is "
                 "above/below the other's; intervals are taken over sessions of fresh tool "
                 "processes")
    return "\n".join(lines)


def retry_line(samples: list[dict]) -> str:
    """How many samples the hypervisor disturbed (more than 2 % of CPU time stolen)."""
    still = sum(1 for s in samples if s.get("disturbed"))
    return (f"{still} of {len(samples)} samples had hypervisor steal above 2 % of CPU time "
            "(kept and flagged: each is paired with bare turns taken moments apart)")


def steal_line(summary: dict) -> str:
    """How much CPU the hypervisor took away during samples: noise the machine added."""
    steal = [r["median"] for r in summary["rows"] if r["metric"] == "steal_s"]
    if not steal:
        return ""
    return (f"hypervisor steal per sample: median {sorted(steal)[len(steal) // 2]:.2f} CPU s, "
            f"worst group {max(steal):.2f} CPU s (0 on an idle host)")
