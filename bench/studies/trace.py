"""How long `testbed trace` takes, as a user runs it (the whole command, Python's start-up
included), on the default topology in every mode: pod to pod across nodes (TCP, answered by a
server; ICMP), pod to a ClusterIP, a datagram to a closed port, and a probe nobody answers (it
waits out its 1 s timeout). Antrea's Traceflow gives up after 20 s by default; the target here
is 2 s. Prints the figures; asserts nothing. Needs root.

    python -m bench.studies.trace [--modes vxlan,host-gw,udp,bgp,openflow] [--repeats 7]
"""
import argparse
import ipaddress
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import testbed
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.model.state import RunState

REPO = testbed.REPO
TOPOLOGY = REPO / "topologies" / "default.yaml"
MODES = ("vxlan", "host-gw", "udp", "bgp", "openflow")
TARGET_S = 2.0

SHOP = REPO / "docs" / "examples" / "shop.yaml"  # two agnhost pods behind Services


def cases(state: RunState) -> list[tuple[str, list[str]]]:
    """(label, trace arguments) of the measured traces."""
    server = next(rec for rec in state.pods.values()
                  if rec.labels.get("app") == "web" and rec.node == "node2")  # of shop's two
    nobody = ipaddress.ip_network(state.nodes["node2"].lease)[-2]  # no pod has it
    return [("pod -> pod, TCP", ["node1-pod1", server.ip, "--port", "8080"]),
            ("pod -> pod, ICMP", ["node1-pod1", "node2-pod1", "--protocol", "icmp"]),
            ("pod -> ClusterIP", ["node1-pod1", "shop/svc/web"]),
            ("UDP, port unreachable", ["node1-pod1", "node2-pod1", "--protocol", "udp",
                                       "--port", "7"]),
            ("no answer (1 s timeout)", ["node1-pod1", str(nobody), "--port", "8080"])]


def timed_trace(cluster: Cluster, args: list[str]) -> tuple[float, float, str]:
    """(wall-clock seconds of the command, the trace's own seconds, its verdict)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", "trace", *args, "-o", "json",
                           "--name", cluster.spec.name], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    wall = time.perf_counter() - started
    if not proc.stdout.startswith("{"):
        raise SystemExit(f"trace {' '.join(args)}: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    return wall, data["seconds"], ("delivered" if data["delivered"] else "dropped")


def measure(mode: str, repeats: int) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="testbed-bench-trace-") as tmp:
        topo = Path(tmp) / "trace.yaml"
        topo.write_text(TOPOLOGY.read_text() + f"manifests: [{SHOP}]\n")
        with Cluster.create(load_spec(str(topo), f"trace-{mode}"), mode) as cluster:
            for label, args in cases(cluster.state):
                runs = [timed_trace(cluster, args) for _ in range(repeats)]
                walls = [r[0] for r in runs]
                rows.append((mode, label, statistics.median(walls), max(walls),
                             statistics.median(r[1] for r in runs), runs[0][2]))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"{'mode':<9} {'trace':<24} {'median s':>8} {'max s':>6} {'inside s':>8}  verdict")
    worst = 0.0
    for mode in args.modes.split(","):
        for mode_, label, median, most, inside, verdict in measure(mode, args.repeats):
            worst = max(worst, most)
            print(f"{mode_:<9} {label:<24} {median:8.2f} {most:6.2f} {inside:8.2f}  {verdict}",
                  flush=True)
    print(f"slowest trace: {worst:.2f} s (target {TARGET_S:.0f} s: "
          f"{'met' if worst <= TARGET_S else 'NOT met'})")


if __name__ == "__main__":
    main()
