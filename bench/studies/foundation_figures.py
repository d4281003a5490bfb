"""Figures for the foundation: bring-up/teardown seconds per mode for default.yaml and a
20-node x 5-pod cluster, and pod-to-pod iperf3 TCP throughput across nodes as a ratio to
node-to-node throughput measured in the same run. Prints the figures; asserts nothing."""
import argparse
import os
import statistics
import sys
import tempfile
import time

from bench.engine.harness import Options, choose_modes
from bench.tools import iperf3
from bench.tools.tool import ToolError
from testbed.host import netns
from testbed.lifecycle import doctor
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec


def big_topology(path: str, nodes: int = 20, pods: int = 5) -> str:
    with open(path, "w") as f:
        f.write("name: big\nnodes:\n")
        for i in range(1, nodes + 1):
            f.write(f"  - name: node{i}\n    pods: {pods}\n")
    return path


def lifecycle_seconds(topo: str, mode: str, name: str) -> tuple[float, float]:
    cluster = Cluster.create(load_spec(topo, name), mode)
    started = time.monotonic()
    with cluster:
        up = time.monotonic() - started
    return up, cluster.timings["down_s"]


def throughput_ratio(mode: str, seconds: float, repeats: int) -> tuple[float, float]:
    """Median pod->pod (node1-pod1 -> node2-pod1) and node1->node2 Gbit/s, interleaved."""
    cluster = Cluster.create(load_spec("topologies/default.yaml", "figs"), mode)
    with cluster:
        state = cluster.state
        dst_pod, dst_node = state.pods["default/node2-pod1"], state.nodes["node2"]
        src_pod = state.pods["default/node1-pod1"]
        n1, n2 = state.nodes["node1"].pid, dst_node.pid
        pod_rates, node_rates = [], []
        for _ in range(repeats):
            pod_rates.append(iperf3.tcp(lambda a: netns.in_pod(dst_pod.netns, a),
                                        lambda a: netns.in_pod(src_pod.netns, a),
                                        dst_pod.ip, seconds)["gbps"])
            node_rates.append(iperf3.tcp(lambda a: netns.in_node(n2, a),
                                         lambda a: netns.in_node(n1, a),
                                         dst_node.ip, seconds)["gbps"])
    return statistics.median(pod_rates), statistics.median(node_rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 duration per sample")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    caps = doctor.capabilities()
    modes, _ = choose_modes(Options(), load_spec("topologies/default.yaml"), caps)
    modes = [m for m in modes if m != "bare"]
    with tempfile.TemporaryDirectory(prefix="testbed-figs-") as tmp:
        big = big_topology(os.path.join(tmp, "big.yaml"))
        print("mode      topology        up s   down s")
        for mode in modes:
            for topo, label in (("topologies/default.yaml", "default (2x2)"), (big, "20 x 5")):
                up, down = lifecycle_seconds(topo, mode, "figs")
                print(f"{mode:<9} {label:<14} {up:6.2f} {down:7.2f}", flush=True)
    print(f"\niperf3 TCP, 1 stream, {args.seconds} s, median of {args.repeats}, interleaved")
    print("mode      pod->pod Gbit/s   node->node Gbit/s   ratio")
    for mode in modes:
        try:
            pod, node = throughput_ratio(mode, args.seconds, args.repeats)
            print(f"{mode:<9} {pod:15.2f} {node:19.2f} {pod / node:7.2f}", flush=True)
        except ToolError as e:
            print(f"{mode:<9} failed: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
