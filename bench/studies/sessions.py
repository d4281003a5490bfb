"""Why a ratio moved between runs: sessions of fresh tool processes, side by side.

    python -m bench.studies.sessions [--sessions 8] [--cycles 10]

Brings up bare, host-gw and vxlan clusters of default.yaml and a second vxlan cluster
(vxlan-again), then measures one TCP stream and request/response in sessions as the benchmark
does (slicing.py), each session with fresh processes and its own placement, in turn:
client and server on two CPUs (0/1, then 1/0), both on one CPU, and left to the scheduler. For
every session it prints each flow's ratio to bare with the interval its turns alone give, and
where its processes ran (/proc/<pid>/stat), then, per flow, how far the sessions' ratios
spread against those intervals. Nothing is written to disk.
"""
import argparse
import dataclasses
import math
import statistics
import sys
from collections import defaultdict

from bench.engine.compare import interval, log_ratios
from bench.engine.cpu import idle_polling
from bench.engine.measures import BY_NAME as MEASURES
from bench.engine.paths import BY_NAME as PATHS
from bench.engine.paths import endpoints
from bench.engine.slicing import Flow, paired, run_sliced
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import BARE, load_spec

TOPOLOGY = "topologies/default.yaml"
PLACEMENTS = (((0, 1), "two CPUs, client 0"), ((1, 0), "two CPUs, client 1"),
              ((0, 0), "one CPU"), (None, "scheduler"))
TESTS = (("tcp-1", "gbps"), ("tcp-rr", "p50_us"))


def _flows(clusters):
    flows = [Flow(mode, path, *endpoints(PATHS[path], clusters[mode].state))
             for mode in ("host-gw", "vxlan", "vxlan-again")
             for path in ("pod-same-node", "pod-cross-node")]
    bare = Flow(BARE, "node-node", *endpoints(PATHS["node-node"], clusters[BARE].state))
    return bare, flows + [dataclasses.replace(bare, mode="bare-again")]


def _session(test, metric, bare, flows, cpus, cycles):
    """{flow label: ((ratio, low, high) over the session's turns, {placements seen})}."""
    turns = []
    run_sliced(lambda fl: MEASURES[test].session(fl, None, cpus), flows, bare, cycles, 0.1,
               turns)
    samples = [{**s, "test": test} for s in paired(turns, bare)]
    logs = log_ratios(samples)
    out = {}
    for flow in flows:
        seen = {tuple(s.get("placement") or ()) for s in samples
                if (s["mode"], s["path"]) == (flow.mode, flow.path)}
        by_turn = [x for v in logs.get((flow.mode, flow.path, test, metric), {}).values()
                   for x in v]
        out[f"{flow.mode} {flow.path}"] = (interval(by_turn), seen)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args(argv)
    clusters = {}
    found = defaultdict(list)  # (test, flow, placement title) -> [(ratio, low, high)]
    try:
        with idle_polling():
            for label, mode in ((BARE, BARE), ("host-gw", "host-gw"), ("vxlan", "vxlan"),
                                ("vxlan-again", "vxlan")):
                spec = load_spec(TOPOLOGY, f"ses-{label.replace('-', '')}"[:32])
                clusters[label] = Cluster.create(spec, mode).__enter__()
            bare, flows = _flows(clusters)
            for k in range(args.sessions):
                cpus, title = PLACEMENTS[k % len(PLACEMENTS)]
                for test, metric in TESTS:
                    for name, (ratio, seen) in _session(test, metric, bare, flows, cpus,
                                                        args.cycles).items():
                        if not ratio:
                            continue
                        found[(test, name, title)].append(ratio)
                        r, low, high = ratio
                        print(f"session {k + 1} ({title}) {test} {name}: {r:.3f} "
                              f"[{low:.3f}-{high:.3f}] ran on {sorted(seen)}", flush=True)
    finally:
        for cluster in clusters.values():
            cluster.__exit__(None, None, None)
    print("\n# per flow and placement: sessions' ratios, their spread, the turns' intervals")
    for (test, name, title), ratios in sorted(found.items()):
        values = [r for r, _l, _h in ratios]
        widths = [max(h / r - 1, 1 - lo / r) for r, lo, h in ratios]
        sd = statistics.stdev(math.log(v) for v in values) if len(values) > 1 else 0.0
        print(f"{test} {name:<28} {title:<19} sessions {' '.join(f'{v:.3f}' for v in values)}"
              f"  spread {max(values) / min(values) - 1:+.1%}  SD {sd:.1%}  "
              f"turns' interval ±{statistics.median(widths):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
