"""Plots of a benchmark run, made from its files alone (PNG and SVG).

  throughput   TCP 1 stream, TCP N streams, UDP: grouped bars per path
  latency      request/response p50 (bar) with p99 as a marker; ICMP RTT
  cpu          CPU seconds per GB moved; a mode's own daemons hatched on top
  ratio        each mode relative to the bare underlay (paired ratios), the run's noise floor
               as a band around 1
  compare      two runs side by side (`testbed plot RUN_A RUN_B`)
Every whisker is a 95 % confidence interval (of the median, or of the paired ratio); a test the
run did not measure gets no panel.
"""
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from bench.engine.paths import PATHS  # noqa: E402
from bench.engine.results import BARE, IPV6_SUFFIX, load_run  # noqa: E402

BARE_COLOUR = "#8c8c8c"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def _colours(modes):
    others = [m for m in modes if m != BARE]
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(others)}
    colours[BARE] = BARE_COLOUR
    return colours


def _rows(run):
    return {(r["mode"], r["path"], r["test"], r["metric"]): r for r in run["summary"]["rows"]}


def _modes(run):
    """The run's modes, each followed by its IPv6 flows where the run measured both
    families (<mode>-ipv6)."""
    rows = {r["mode"] for r in run["summary"]["rows"]}
    modes = run["machine"].get("modes") or sorted(rows)
    return [name for mode in modes for name in (mode, mode + IPV6_SUFFIX)
            if name == mode or name in rows]


def _subtitle(run):
    m = run["machine"]
    opts = m.get("options", {})
    sessions = f" in {opts['sessions']} sessions" if opts.get("sessions") else ""
    udp = f" (UDP: {opts.get('repeats')} of whole runs)" if "udp" in (opts.get("tests") or
                                                                      ["udp"]) else ""
    how = (f"paired turns of {opts.get('slice_ms')} ms, {opts.get('slices')} cycles{sessions}"
           f"{udp}" if opts.get("slices") else
           f"median of {opts.get('repeats')} repeats, {opts.get('duration')} s each")
    return (f"{os.path.basename(m.get('topology', '?'))} · {m.get('cpu_model') or 'CPU ?'}, "
            f"{m.get('cores')} cores · kernel {m.get('kernel')}\n{how} · run {run['name']}")


def _has(run, test, metric):
    return any(r["test"] == test and r["metric"] == metric for r in run["summary"]["rows"])


def _positions(paths, modes, has):
    """{(mode, path name): x}: bars centred on their path's tick, only modes with a value."""
    width = 0.8 / max(len(modes), 1)
    xs = {}
    for j, path in enumerate(paths):
        present = [m for m in modes if has(m, path.name)]
        for i, mode in enumerate(present):
            xs[(mode, path.name)] = j + width * (i - (len(present) - 1) / 2)
    return xs, width


def _axes(ax, paths, ylabel, title):
    ax.set_xticks(range(len(paths)))
    ax.set_xticklabels([p.title.replace(", ", ",\n") for p in paths], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _grouped(ax, run, test, metric, ylabel, title, whisker_metric=None):
    """Bars: x = paths, one bar per mode; error bars = the median's confidence interval."""
    rows, modes = _rows(run), _modes(run)
    colours = _colours(modes)
    paths = [p for p in PATHS if any((m, p.name, test, metric) in rows for m in modes)]
    xs, width = _positions(paths, modes, lambda m, p: (m, p, test, metric) in rows)
    for mode in modes:
        bars = [(xs[(mode, p.name)], rows[(mode, p.name, test, metric)]) for p in paths
                if (mode, p.name) in xs]
        if not bars:
            continue
        x = [b[0] for b in bars]
        med = [r["median"] for _, r in bars]
        lo = [r["median"] - (r["ci_low"] if r["ci_low"] is not None else r["median"])
              for _, r in bars]
        hi = [(r["ci_high"] if r["ci_high"] is not None else r["median"]) - r["median"]
              for _, r in bars]
        ax.bar(x, med, width * 0.95, color=colours[mode], label=mode, yerr=[lo, hi],
               capsize=3, error_kw={"elinewidth": 1})
        for (bx, r), y in zip(bars, med):
            top = rows.get((mode, r["path"], test, whisker_metric)) if whisker_metric else None
            if top is not None:  # a marker, not a whisker: whiskers are intervals
                ax.plot([bx], [top["median"]], marker="_", markersize=12, color="black",
                        linestyle="none", label="p99 (median)")
    _axes(ax, paths, ylabel, title)
    return xs, width


def _figure(run, panels, title, out_base):
    panels = [p for p in panels if p is not None]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        panel(ax)
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="center right", title="mode", fontsize=9)
    fig.suptitle(f"{title}\n{_subtitle(run) if run else ''}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.88, 0.88))
    files = []
    for ext in ("png", "svg"):
        path = f"{out_base}.{ext}"
        fig.savefig(path, dpi=120)
        files.append(path)
    plt.close(fig)
    return files


def _cpu_panel(ax, run, test, title):
    xs, width = _grouped(ax, run, test, "cpu_s_per_gb", "CPU seconds per GB moved", title)
    rows = _rows(run)
    for (mode, path), x in xs.items():
        own = [r for k, r in rows.items() if k[:3] == (mode, path, test)
               and k[3].startswith("daemon_cpu_s_per_gb.")]
        if own:
            ax.bar([x], [sum(r["median"] for r in own)], width * 0.95, fill=False,
                   hatch="///", edgecolor="black", label="mode's own daemons")


def path_floor(floors: list[dict], path: str, test: str, metric: str) -> float | None:
    """The noise floor a path's comparisons were judged with: its own, else its test's widest
    (runs made before floors were kept per path have one per test)."""
    own = [f["floor"] for f in floors if (f["test"], f["metric"]) == (test, metric) and
           f.get("path", path) == path]
    found = own or [f["floor"] for f in floors if (f["test"], f["metric"]) == (test, metric)]
    return max(found) if found else None


def _ratio_panel(ax, run, test, metric, title):
    rows, modes = _rows(run), [m for m in _modes(run) if m != BARE]
    colours = _colours(_modes(run))

    def ratio(mode, path):
        r = rows.get((mode, path, test, metric))
        return r.get("ratio_to_bare") if r else None

    paths = [p for p in PATHS if p.kind == "pod" and any(ratio(m, p.name) for m in modes)]
    xs, width = _positions(paths, modes, lambda m, p: ratio(m, p) is not None)
    floors = run["summary"].get("noise_floor", [])
    for j, path in enumerate(paths):
        floor = path_floor(floors, path.name, test, metric)
        if floor is not None:
            ax.fill_between([j - 0.45, j + 0.45], max(0.0, 1 - floor), 1 + floor,
                            color=BARE_COLOUR, alpha=0.2,
                            label="noise floor (A/A)" if j == 0 else None)
    for mode in modes:
        bars = [(x, rows[(m, p, test, metric)]) for (m, p), x in xs.items() if m == mode]
        if bars:
            values = [r["ratio_to_bare"] for _, r in bars]
            ci = [r.get("ratio_ci") or [r["ratio_to_bare"]] * 2 for _, r in bars]
            ax.bar([b[0] for b in bars], values, width * 0.95, color=colours[mode], label=mode,
                   yerr=[[v - c[0] for v, c in zip(values, ci)],
                         [c[1] - v for v, c in zip(values, ci)]],
                   capsize=3, error_kw={"elinewidth": 1})
    ax.axhline(1.0, color=BARE_COLOUR, linestyle="--", linewidth=1, label="bare = 1")
    _axes(ax, paths, "ratio to bare (node to node)", title)


def plot_run(run_dir: str | os.PathLike) -> list[str]:
    run = load_run(run_dir)
    base = lambda name: os.path.join(run_dir, name)  # noqa: E731
    opts = run["machine"]["options"]

    def panel(test, metric, draw):
        return draw if _has(run, test, metric) else None
    files = []
    files += _figure(run, [
        panel("tcp-1", "gbps", lambda ax: _grouped(ax, run, "tcp-1", "gbps", "Gbit/s",
                                                   "TCP, 1 stream (iperf3)")),
        panel("tcp-n", "gbps", lambda ax: _grouped(
            ax, run, "tcp-n", "gbps", "Gbit/s", f"TCP, {opts.get('streams')} streams "
            "(iperf3 -P)")),
        panel("udp", "gbps", lambda ax: _grouped(
            ax, run, "udp", "gbps", "Gbit/s received",
            f"UDP at {opts.get('udp_rate')}bit/s offered")),
    ], "Pod-to-pod throughput by CNI mode and path (whiskers: 95 % CI of the median)",
        base("throughput"))
    files += _figure(run, [
        panel("tcp-rr", "p50_us", lambda ax: _grouped(
            ax, run, "tcp-rr", "p50_us", "µs (RTT/2)", "TCP request/response (rr-probe)",
            whisker_metric="p99_us")),
        panel("udp-rr", "p50_us", lambda ax: _grouped(
            ax, run, "udp-rr", "p50_us", "µs (RTT/2)", "UDP request/response (rr-probe)",
            whisker_metric="p99_us")),
        panel("icmp", "rtt_p50_ms", lambda ax: _grouped(
            ax, run, "icmp", "rtt_p50_ms", "ms", "ICMP round trip (ping)",
            whisker_metric="rtt_p99_ms")),
    ], "Latency: bar = median p50 (whiskers: its 95 % CI), marker = p99", base("latency"))
    files += _figure(run, [
        panel(t, "cpu_s_per_gb", lambda ax, t=t, title=title: _cpu_panel(ax, run, t, title))
        for t, title in (("tcp-1", "TCP, 1 stream"), ("tcp-n", "TCP, N streams"),
                         ("udp", "UDP"))
    ], "CPU cost: machine-wide busy CPU seconds per GB received (whiskers: 95 % CI)",
        base("cpu"))
    files += _figure(run, [
        panel(t, m, lambda ax, t=t, m=m, title=title: _ratio_panel(ax, run, t, m, title))
        for t, m, title in (("tcp-1", "gbps", "TCP throughput, 1 stream"),
                            ("tcp-n", "gbps", "TCP throughput, N streams"),
                            ("tcp-rr", "p50_us", "TCP request/response p50 (higher = slower)"),
                            ("icmp", "rtt_p50_ms", "ICMP round trip p50 (higher = slower)"))
    ], "Each mode relative to the bare underlay, paired in time (whiskers: 95 % CI; band: "
       "the run's noise floor)", base("ratio"))
    return files


COMPARE = (("tcp-1", "gbps", "TCP 1 stream, Gbit/s"),
           ("tcp-rr", "p50_us", "TCP request/response p50, µs"),
           ("tcp-1", "cpu_s_per_gb", "CPU s per GB, TCP 1 stream"))


def plot_compare(run_a_dir: str | os.PathLike, run_b_dir: str | os.PathLike,
                 out_dir: str | os.PathLike) -> list[str]:
    runs = [load_run(run_a_dir), load_run(run_b_dir)]
    os.makedirs(out_dir, exist_ok=True)

    def panel(ax, test, metric, title):
        keys = sorted({(r["mode"], r["path"]) for run in runs for r in run["summary"]["rows"]
                       if r["test"] == test and r["metric"] == metric},
                      key=lambda k: ([p.name for p in PATHS].index(k[1]), k[0]))
        for i, run in enumerate(runs):
            rows = _rows(run)
            xs, ys, err = [], [], [[], []]
            for j, (mode, path) in enumerate(keys):
                r = rows.get((mode, path, test, metric))
                if r:
                    xs.append(j - 0.2 + 0.4 * i)
                    ys.append(r["median"])
                    err[0].append(r["median"] - (r["ci_low"] or r["median"]))
                    err[1].append((r["ci_high"] or r["median"]) - r["median"])
            ax.bar(xs, ys, 0.38, yerr=err, capsize=3, label=run["name"],
                   color=PALETTE[i], alpha=0.85)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([f"{m}\n{p}" for m, p in keys], fontsize=7, rotation=30)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)

    return _figure(None, [lambda ax, c=c: panel(ax, *c) for c in COMPARE],
                   f"Run {runs[0]['name']} vs run {runs[1]['name']} (medians, CI error bars)",
                   os.path.join(out_dir, "compare"))
