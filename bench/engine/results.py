"""A benchmark run's directory: machine facts, every sample, a tidy CSV and the summaries.

Plots are made from these files alone, so any run can be re-plotted or compared later.
  machine.json   kernel, CPU, cores, tool versions, datapaths, commit, options
  samples.jsonl  one JSON line per sample, appended as it is measured (survives a crash)
  samples.json   all samples, written at the end
  results.csv    one row per sample and metric
  summary.json   medians, confidence intervals, ratios to bare, failures, paths not applicable
"""
import csv
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import mininet.net

from bench.engine import stats
from bench.engine.compare import comparisons
from bench.engine.measures import unit_of
from bench.engine.paths import BY_NAME as PATHS
from testbed.errors import TestbedError

BARE = "bare"
IPV6_SUFFIX = "-ipv6"  # a dual-family run's IPv6 flows: <mode>-ipv6 (bench --family dual)
RATIO_METRICS = ("gbps", "p50_us", "p99_us", "rtt_p50_ms", "cpu_s_per_gb")
CSV_FIELDS = ("run", "session", "repeat", "mode", "path", "test", "metric", "value", "unit",
              "ok", "error")


def _first_line(argv, env=None):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0].strip() if out else None


def _read_key(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip() if ":" in line else \
                        line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def _cni_plugin_version(path="/usr/lib/cni/bridge"):
    out = _first_line([path], env={"CNI_COMMAND": "VERSION"})
    try:
        return json.loads(out).get("supportedVersions", [])[-1] if out else None
    except (ValueError, IndexError, AttributeError):
        return out


def machine_facts(repo: str | os.PathLike, datapaths: dict[str, str], options: dict) -> dict:
    commit = _first_line(["git", "-C", str(repo), "rev-parse", "HEAD"])
    dirty = _first_line(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"])
    return {
        "kernel": platform.release(),
        "os": _read_key("/etc/os-release", "PRETTY_NAME="),
        "cpu_model": _read_key("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory": _read_key("/proc/meminfo", "MemTotal"),
        "python": sys.version.split()[0],
        "tools": {
            "iperf3": _first_line(["iperf3", "--version"]),
            "rr-probe": "native/rr-probe.c at the commit below",
            "ping": _first_line(["ping", "-V"]),
            "mininet": getattr(mininet.net, "VERSION", None),
            "cni-plugins (spec versions up to)": _cni_plugin_version(),
        },
        "datapaths": datapaths,
        "commit": commit,
        "commit_dirty": bool(dirty),
        "options": options,
    }


class RunWriter:
    def __init__(self, run_dir: str | os.PathLike):
        self.dir = str(run_dir)
        os.makedirs(self.dir, exist_ok=True)
        self.samples = []
        self.not_applicable = []

    def write_json(self, name: str, doc: object) -> None:
        with open(os.path.join(self.dir, name), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True, default=str)

    def add(self, sample: dict) -> None:
        self.samples.append(sample)
        with open(os.path.join(self.dir, "samples.jsonl"), "a") as f:
            f.write(json.dumps(sample, sort_keys=True) + "\n")

    def skip(self, mode: str, path: str, reason: str) -> None:
        entry = {"mode": mode, "path": path, "reason": reason}
        if entry not in self.not_applicable:
            self.not_applicable.append(entry)

    def finish(self, status: str, aa_groups: Iterable[tuple[str, list[str]]] = (),
               baselines: dict[str, str] | None = None,
               elapsed_s: float | None = None) -> dict:
        """Write samples, CSV and summary; aa_groups and baselines as compare.comparisons
        takes them; elapsed_s, the run's time from its start to its end of measuring."""
        run = os.path.basename(self.dir)
        self.write_json("samples.json", self.samples)
        with open(os.path.join(self.dir, "results.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, CSV_FIELDS)
            writer.writeheader()
            for row in tidy_rows(run, self.samples):
                writer.writerow(row)
        summary = summarize(self.samples, aa_groups, baselines or {})
        summary["not_applicable"] = self.not_applicable
        summary["status"] = status
        summary["run"] = run
        if elapsed_s is not None:
            summary["elapsed_s"] = elapsed_s
        self.write_json("summary.json", summary)
        return summary


def tidy_rows(run: str, samples: list[dict]) -> list[dict]:
    for s in samples:
        base = {"run": run, "session": s.get("session", ""), "repeat": s["repeat"],
                "mode": s["mode"], "path": s["path"],
                "test": s["test"], "ok": s["ok"], "error": s.get("error") or ""}
        if not s["ok"]:
            yield {**base, "metric": "", "value": "", "unit": ""}
            continue
        for metric, value in sorted(s["metrics"].items()):
            yield {**base, "metric": metric, "value": value, "unit": unit_of(metric)}


def summarize(samples: list[dict], aa_groups: Iterable[tuple[str, list[str]]] = (),
              baselines: dict[str, str] | None = None) -> dict:
    """Per (mode, path, test, metric): median, CI, CV over the successful samples; ratios to
    bare; and the paired comparisons with the run's noise floor (compare.py)."""
    values = defaultdict(list)
    failures = defaultdict(list)
    for s in samples:
        key = (s["mode"], s["path"], s["test"])
        if s["ok"]:
            for metric, value in s["metrics"].items():
                if isinstance(value, (int, float)):
                    values[key + (metric,)].append(float(value))
        else:
            failures[key].append(s["error"])
    rows = []
    for (mode, path, test, metric), xs in sorted(values.items()):
        low, high, coverage = stats.median_ci(xs)
        rows.append({"mode": mode, "path": path, "test": test, "metric": metric,
                     "unit": unit_of(metric), "n": len(xs),
                     "failed": len(failures.get((mode, path, test), [])),
                     "median": stats.percentile(xs, 50), "ci_low": low, "ci_high": high,
                     "ci_coverage": coverage, "cv": stats.cv(xs)})
    found, floor = comparisons(samples, baselines or {}, aa_groups)
    paired = {(c["mode_a"], c["path"], c["test"], c["metric"]): c for c in found
              if c["mode_b"] == BARE}
    bare = {(r["path"], r["test"], r["metric"]): r["median"] for r in rows if r["mode"] == BARE}
    for r in rows:
        baseline = PATHS[r["path"]].baseline if r["path"] in PATHS else ""
        ref = bare.get((baseline, r["test"], r["metric"]))
        pair = paired.get((r["mode"], r["path"], r["test"], r["metric"]))
        if pair:  # the paired ratio, where the run measured pairs
            r.update(ratio_to_bare=pair["ratio"], ratio_ci=[pair["ci_low"], pair["ci_high"]],
                     verdict=pair["verdict"], bare_path=baseline)
            if ref:
                # the mode's value at the bare turns' median machine speed: turns spread over
                # the vCPUs' drifting speed, so a plain median of 60 turns is uncertain by a
                # few per cent, which pairing removes
                r["paired_median"] = ref * pair["ratio"]
        elif r["mode"] != BARE and r["metric"] in RATIO_METRICS and ref:
            r["ratio_to_bare"] = r["median"] / ref
            r["bare_path"] = baseline
    return {"rows": rows, "comparisons": found, "noise_floor": floor,
            "failures": [{"mode": m, "path": p, "test": t, "count": len(errs),
                          "errors": sorted(set(errs))}
                         for (m, p, t), errs in sorted(failures.items())]}


def load_run(run_dir: str | os.PathLike) -> dict:
    """A run's files; a missing or damaged one is a one-line TestbedError."""
    def read(name: str) -> Any:
        path = os.path.join(run_dir, name)
        try:
            with open(path) as f:
                return json.load(f)
        except OSError as e:
            raise TestbedError(f"{path}: cannot read: {e.strerror} (is {run_dir} a run "
                               "directory of `testbed bench`?)")
        except ValueError as e:
            raise TestbedError(f"{path}: not the JSON a benchmark writes ({e})")
    return {"dir": str(run_dir), "name": os.path.basename(os.path.normpath(run_dir)),
            "machine": read("machine.json"), "summary": read("summary.json"),
            "samples": read("samples.json")}


def resummarize(run_dir: str | os.PathLike) -> dict:
    """Write a run's summary.json again from its samples with the analysis as it is now (the
    intervals of compare.py), keeping what the run recorded of itself; the summary it wrote."""
    from bench.engine import controls
    from bench.engine.paths import PATHS as ALL_PATHS
    run = load_run(run_dir)
    samples = run["samples"]
    measured = {(s["mode"], s["path"]) for s in samples}
    summary = summarize(samples,
                        controls.aa_groups([(p.name, p.kind) for p in ALL_PATHS], measured),
                        {p.name: p.baseline for p in ALL_PATHS if p.baseline})
    for kept in ("not_applicable", "status", "run", "elapsed_s"):
        if kept in run["summary"]:
            summary[kept] = run["summary"][kept]
    summary["resummarized"] = True
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    """python -m bench.engine.results RUN_DIR [...]: summarize runs again from their samples."""
    for run_dir in (argv if argv is not None else sys.argv[1:]):
        try:
            resummarize(run_dir)
        except TestbedError as e:
            print(f"bench.engine.results: {e}", file=sys.stderr)
            return 1
        print(f"{run_dir}: summary.json written again from samples.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
