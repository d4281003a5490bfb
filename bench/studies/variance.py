"""Where the benchmark's variance comes from: the machine's speed, CPU placement, the tool.

    python -m bench.studies.variance [--samples 16] [--seconds 1]

Brings up a bare cluster and host-gw and vxlan clusters of default.yaml side by side and
measures, in alternation, one TCP stream (iperf3) and TCP request/response (sockperf):

  machine speed   a fixed CPU-bound loop (CALIBRATION) timed right before each sample: how
                  strongly throughput follows the vCPUs' own speed, and how much of the spread
                  is left once each sample is scaled by it
  pairing         identical datapaths (host-gw and vxlan pod to pod on one node: cni0 and two
                  veths, no encapsulation) sampled back to back: the spread of their ratio
                  against the spread of each alone
  placement       iperf3 client and server pinned to different cores, to the same core, or left
                  to the scheduler
  tool            1 s against 3 s samples

Prints one line per finding; nothing is written to disk.
"""
import argparse
import math
import statistics
import sys
import time

from bench.engine.paths import BY_NAME as PATHS
from bench.engine.paths import Endpoint, endpoints
from bench.tools import iperf3, sockperf
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import BARE, load_spec

TOPOLOGY = "topologies/default.yaml"
CALIBRATION_LOOPS = 300_000


def calibration_s() -> float:
    """Seconds a fixed pure-Python loop takes now: the vCPU's speed at this moment."""
    started = time.perf_counter()
    x = 0
    for i in range(CALIBRATION_LOOPS):
        x += i * i
    return time.perf_counter() - started


def cv(xs: list[float]) -> float:
    return statistics.stdev(xs) / statistics.fmean(xs) if len(xs) > 1 else float("nan")


def correlation(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    return sxy / (sx * sy) if sx and sy else float("nan")


def tcp1(pair: tuple[Endpoint, Endpoint], seconds: float,
         cpus: tuple[int, int] | None = (0, 1)) -> float:
    client, server = pair
    return iperf3.tcp(server.argv, client.argv, server.ip, seconds, omit=1, cpus=cpus)["gbps"]


def rr(pair: tuple[Endpoint, Endpoint], seconds: float) -> float:
    client, server = pair
    return sockperf.pingpong(server.argv, client.argv, server.ip, seconds, "tcp")["p50_us"]


def line(label: str, xs: list[float], unit: str) -> str:
    return (f"{label:<44} n={len(xs):3d}  median {statistics.median(xs):8.2f} {unit:<7} "
            f"CV {cv(xs) * 100:5.1f}%  min {min(xs):.2f}  max {max(xs):.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=1)
    args = parser.parse_args(argv)
    n, secs = args.samples, args.seconds
    clusters = {}
    try:
        for mode in (BARE, "host-gw", "vxlan"):
            spec = load_spec(TOPOLOGY, f"var-{mode.replace('-', '')}")
            clusters[mode] = Cluster.create(spec, mode).__enter__()
        same = {m: endpoints(PATHS["pod-same-node"], clusters[m].state)
                for m in ("host-gw", "vxlan")}
        bare = endpoints(PATHS["node-node"], clusters[BARE].state)
        cross = endpoints(PATHS["pod-cross-node"], clusters["vxlan"].state)
        for pair in (*same.values(), bare, cross):
            tcp1(pair, 1)  # warm-up: neighbours, FDB, slow start of the first run

        print(f"# machine speed and pairing: {n} rounds of {secs} s tcp-1, alternating")
        speed, rates = [], {"host-gw": [], "vxlan": [], "bare": []}
        for _ in range(n):
            speed.append(calibration_s())
            rates["host-gw"].append(tcp1(same["host-gw"], secs))
            rates["vxlan"].append(tcp1(same["vxlan"], secs))
            rates["bare"].append(tcp1(bare, secs))
        print(line("calibration loop (s)", speed, "s"))
        for label, xs in rates.items():
            print(line(f"tcp-1 {label}", xs, "Gbit/s"))
            print(f"  correlation with the loop's time: r = {correlation(speed, xs):+.2f}; "
                  f"CV scaled by it {cv([x * s for x, s in zip(xs, speed)]) * 100:.1f}%")
        aa = [a / b for a, b in zip(rates["host-gw"], rates["vxlan"])]
        print(line("A/A ratio host-gw/vxlan, same node, paired", aa, "x"))
        shuffled = [a / b for a, b in zip(rates["host-gw"], rates["vxlan"][1:] +
                                          rates["vxlan"][:1])]
        print(line("A/A ratio, samples one round apart", shuffled, "x"))

        print(f"\n# placement: tcp-1 host-gw same node, {n} samples each, interleaved")
        placements = {"pinned to cores 0 and 1": (0, 1), "both on core 0": (0, 0),
                      "left to the scheduler": None}
        found = {k: [] for k in placements}
        for _ in range(n):
            for label, cpus in placements.items():
                found[label].append(tcp1(same["host-gw"], secs, cpus))
        for label, xs in found.items():
            print(line(f"tcp-1 {label}", xs, "Gbit/s"))

        print(f"\n# tool: sample length, tcp-1 and tcp-rr, {n // 2} samples each")
        for seconds in (1, 3):
            xs = [tcp1(same["host-gw"], seconds) for _ in range(n // 2)]
            print(line(f"tcp-1 host-gw same node, {seconds} s", xs, "Gbit/s"))
        for seconds in (1, 3):
            xs, ys = [], []
            for _ in range(n // 2):
                xs.append(rr(bare, seconds))
                ys.append(rr(cross, seconds))
            print(line(f"tcp-rr p50 bare node-node, {seconds} s", xs, "µs"))
            print(line(f"tcp-rr p50 vxlan cross-node, {seconds} s", ys, "µs"))
            print(line(f"  ratio vxlan/bare, paired, {seconds} s",
                       [y / x for x, y in zip(xs, ys)], "x"))
    finally:
        for cluster in clusters.values():
            cluster.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
