"""Services at scale: kube-proxy's iptables and nftables modes with 1, 1,000 and 5,000 Services.

For each proxy mode and Service count it prints
  - per-connection latency (TCP connect until the server's first byte) from a pod on node1 to a
    pod on node2: straight to the pod's address, and through the ClusterIP of the Service whose
    rules come last (in the iptables mode its KUBE-SERVICES rule is the last of N);
  - the time kube-proxy takes to apply one change (a Service added, then removed) on every node,
    and the first sync of all N.
Connections of the two kinds alternate in small blocks, so that the machine's noise falls on
both alike. Prints the figures; asserts nothing. Needs root.

    python -m bench.studies.services [--counts 1,1000,5000] [--modes iptables,nftables]
                                     [--conns 400]
"""
import argparse
import statistics
import sys
import time

from testbed.api import apply
from testbed.errors import CommandError
from testbed.host import netns
from testbed.host.waiting import wait_until
from testbed.kubeproxy import services
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.manifests import kinds

PORT = 7000
# accept, send one byte, close: the least a server can do per connection
SERVER = ("import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)"
          f"; s.bind(('0.0.0.0',{PORT})); s.listen(512)\n"
          "while True:\n c,_=s.accept(); c.sendall(b'x'); c.close()")
# per connection: connect, wait for the byte, close; prints microseconds, one per line
CLIENT = ("import socket,sys,time; ip=sys.argv[1]; n=int(sys.argv[2]); out=[]\n"
          "for _ in range(n):\n"
          " t=time.perf_counter(); c=socket.create_connection((ip,%d)); c.recv(1)\n"
          " out.append((time.perf_counter()-t)*1e6); c.setsockopt(socket.SOL_SOCKET,"
          "socket.SO_LINGER,b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00'); c.close()\n"
          "print('\\n'.join('%%.1f'%%x for x in out))" % PORT)
BLOCK = 50  # connections per block; direct and Service blocks alternate


def backend_manifest() -> list:
    server = kinds.Container("server", "busybox", ("python3", "-c", SERVER))
    template = kinds.PodTemplate({"app": "echo"}, (server,), "node2")
    return [kinds.Namespace("bench", {}, "bench"),
            kinds.Pod("echo", "bench", template, "bench")]


def service(index: int) -> kinds.Service:
    """Service s<index>; ClusterIPs given, so that making thousands stays quick."""
    ip = services.SERVICE_CIDR[100 + index]
    return kinds.Service(f"s{index:05d}", "bench", "ClusterIP", {"app": "echo"},
                      (kinds.ServicePort(PORT, PORT),), str(ip), source="bench")


def connect_latencies(sandbox: str, address: str, count: int) -> list[float]:
    """Connect times (µs) from a pod, given by its sandbox (network namespace)."""
    out = netns.run(netns.in_pod(sandbox, ["python3", "-c", CLIENT, address, str(count)]))
    return [float(x) for x in out.split()]


def wait_for_server(sandbox: str, address: str) -> None:
    def answers() -> bool:
        try:
            connect_latencies(sandbox, address, 1)
            return True
        except (CommandError, ValueError):  # refused, or nothing printed yet
            return False
    if not wait_until(answers, 10, 0.1):
        raise RuntimeError(f"nothing answers on {address}:{PORT}")


def measure(client: str, pod_ip: str, last_ip: str,
            conns: int) -> tuple[list[float], list[float]]:
    direct, through = [], []
    for _ in range(max(1, conns // BLOCK)):
        direct += connect_latencies(client, pod_ip, BLOCK)
        through += connect_latencies(client, last_ip, BLOCK)
    return direct, through


def timed_sync(cluster: Cluster) -> float:
    started = time.monotonic()
    cluster.proxies.sync(cluster.context)
    return time.monotonic() - started


def change_time(cluster: Cluster, count: int) -> tuple[float, float]:
    """Seconds for kube-proxy on every node to add one Service, then to remove it."""
    extra = service(count + 1)
    services.add(cluster.state, extra)
    added = timed_sync(cluster)
    services.remove(cluster.state, "bench", extra.name)
    removed = timed_sync(cluster)
    return added, removed


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def run(mode: str, counts: list[int], conns: int, topo: str) -> None:
    spec = load_spec(topo, f"svc-{mode[:3]}", proxy_mode=mode)
    with Cluster.create(spec, "vxlan") as cluster:
        apply.apply(cluster, kinds.Manifests(backend_manifest(), []))
        pod_ip = cluster.state.pods["bench/echo"].ip
        client = cluster.state.pods["default/node1-pod1"].netns
        wait_for_server(client, pod_ip)
        made = 0
        for count in counts:
            for index in range(made, count):
                services.add(cluster.state, service(index))
            made = count
            first_sync = timed_sync(cluster)
            last_ip = service(count - 1).cluster_ip
            wait_for_server(client, last_ip)
            direct, through = measure(client, pod_ip, last_ip, conns)
            added, removed = change_time(cluster, count)
            d50, s50 = statistics.median(direct), statistics.median(through)
            print(f"{mode:<9} {count:6d}  {d50:9.1f} {p(direct, 90):7.1f}  {s50:9.1f} "
                  f"{p(through, 90):7.1f}  {s50 / d50:5.2f}  {first_sync:8.2f}  "
                  f"{added:7.3f} {removed:7.3f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,1000,5000")
    parser.add_argument("--modes", default="iptables,nftables")
    parser.add_argument("--conns", type=int, default=400, help="connections per kind and point")
    parser.add_argument("--topo", default="topologies/default.yaml")
    args = parser.parse_args(argv)
    counts = sorted(int(c) for c in args.counts.split(","))
    print("connect latency in microseconds (median, p90); sync seconds on all nodes")
    print("mode      services  direct p50     p90  via SVC p50    p90  ratio  sync all  "
          "+1 svc  -1 svc")
    for mode in args.modes.split(","):
        run(mode, counts, args.conns, args.topo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
