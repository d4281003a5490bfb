"""NetworkPolicy at scale: connection latency and throughput between two pods with 0, 100 and
1,000 policies in the namespace, as Calico enforces them (bgp) and as Canal adds them to
flannel (vxlan with networkPolicy.enforce).

Every policy selects the server pod; policy i admits clients labelled role=client-<i> on the
measured ports, and only the last admits the measuring client, so the first packet of each
connection passes every policy chain of the server's endpoint before one lets it through (the
worst case; packets of established connections are accepted before any policy). A second
server on the same node that no policy selects is the control: connections to both alternate
in blocks, and their ratio is the policies' cost free of the machine's drift. Prints the
figures; asserts nothing. Needs root.

    python -m bench.studies.policies [--counts 0,100,1000] [--modes bgp,vxlan] [--conns 400]
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import testbed
from bench.studies.services import BLOCK, PORT, SERVER, connect_latencies, wait_for_server
from bench.tools import iperf3
from testbed.api import apply
from testbed.host import netns
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.manifests import kinds
from testbed.model.records import PolicyRecord

TOPOLOGY = testbed.REPO / "topologies" / "default.yaml"


def pods() -> list:
    server = kinds.Container("server", "busybox", ("python3", "-c", SERVER))
    shell = kinds.Container("shell", "busybox")
    return [kinds.Namespace("bench", {}, "bench"),
            kinds.Pod("pserver", "bench", kinds.PodTemplate({"app": "server"}, (server,), "node2")),
            kinds.Pod("pfree", "bench", kinds.PodTemplate({"app": "free"}, (server,), "node2")),
            kinds.Pod("pclient", "bench", kinds.PodTemplate({"role": "client"}, (shell,), "node1"))]


def policy(index: int, last: bool) -> kinds.NetworkPolicy:
    client = "client" if last else f"client-{index}"
    return kinds.NetworkPolicy(
        f"p{index:04d}", "bench", kinds.LabelSelector((("app", "server"),)), ("Ingress",),
        (kinds.PolicyRule((kinds.PolicyPeer(kinds.LabelSelector((("role", client),))),),
                       (kinds.PolicyPort("TCP", PORT), kinds.PolicyPort("TCP", iperf3.PORT))),))


def policies(count: int) -> list[kinds.NetworkPolicy]:
    return [policy(i, i == count - 1) for i in range(count)]


def throughput(server: str, client: str, server_ip: str, repeats: int, seconds: float) -> float:
    runs = [iperf3.tcp(lambda cmd: netns.in_pod(server, cmd),
                       lambda cmd: netns.in_pod(client, cmd), server_ip, seconds)["gbps"]
            for _ in range(repeats)]
    return statistics.median(runs)


def change_per_node(cluster: Cluster, one: kinds.NetworkPolicy) -> list[float]:
    """Seconds per node for the policy enforcer to add one policy, then to remove it (what
    Felix does on a change; the API side of `apply` is not counted)."""
    key = f"{one.namespace}/{one.name}"
    timings = []
    for change in ("add", "remove"):
        if change == "add":
            cluster.state.policies[key] = PolicyRecord(one, time.time())
        else:
            del cluster.state.policies[key]
        started = time.monotonic()
        cluster.policy.sync(cluster.context)
        timings.append((time.monotonic() - started) / len(cluster.nodes))
    return timings


def run(mode: str, counts: list[int], conns: int, repeats: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="testbed-pol-") as tmp:
        topo = Path(tmp) / "policed.yaml"
        topo.write_text(TOPOLOGY.read_text() + "networkPolicy: {enforce: true}\n")
        with Cluster.create(load_spec(str(topo), f"pol-{mode}"), mode) as cluster:
            apply.apply(cluster, kinds.Manifests(pods(), []))
            pods_now = cluster.state.pods
            server_ip, free_ip = pods_now["bench/pserver"].ip, pods_now["bench/pfree"].ip
            server, client = pods_now["bench/pserver"].netns, pods_now["bench/pclient"].netns
            wait_for_server(client, server_ip)
            wait_for_server(client, free_ip)
            for count in counts:
                apply.delete(cluster, kinds.Manifests(policies(max(counts)), []))
                started = time.monotonic()
                apply.apply(cluster, kinds.Manifests(policies(count), []))
                applied = time.monotonic() - started
                wait_for_server(client, server_ip)
                latencies, control = [], []
                for _ in range(max(1, conns // BLOCK)):
                    latencies += connect_latencies(client, server_ip, BLOCK)
                    control += connect_latencies(client, free_ip, BLOCK)
                gbps = throughput(server, client, server_ip, repeats, seconds)
                added, removed = change_per_node(cluster, policy(count, False))
                p90 = statistics.quantiles(latencies, n=10)[8]
                p50, free50 = statistics.median(latencies), statistics.median(control)
                print(f"{mode:<6} {count:8d}  {p50:9.1f} {p90:7.1f}  {free50:8.1f} "
                      f"{p50 / free50:6.2f}  {gbps:8.2f}  {applied:9.2f}  "
                      f"{added * 1000:8.1f} {removed * 1000:8.1f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="0,100,1000")
    parser.add_argument("--modes", default="bgp,vxlan")
    parser.add_argument("--conns", type=int, default=400, help="connections per point")
    parser.add_argument("--repeats", type=int, default=3, help="iperf3 runs per point")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per iperf3 run")
    args = parser.parse_args(argv)
    counts = sorted(int(c) for c in args.counts.split(","))
    print("connect latency in microseconds; TCP throughput median in Gbit/s; apply all in "
          "seconds; one policy added (+1) and removed (-1) in milliseconds per node")
    print("mode   policies  conn p50     p90  free p50  ratio  TCP Gbit/s  apply all  "
          "+1 ms/node -1 ms/node")
    for mode in args.modes.split(","):
        run(mode, counts, args.conns, args.repeats, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
