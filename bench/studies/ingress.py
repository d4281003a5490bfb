"""The Ingress under load: requests per second and latency (p50, p99) with wrk, from the
external host, through the guides' example (docs/examples/ingress.yaml) on two-racks.yaml.

Three paths to the same two book pods, interleaved round after round so that the machine's
drift falls on all alike: a NodePort of Service book (kube-proxy only: the baseline), the
Ingress over plain HTTP (host plain.example.com: kube-proxy to the controller, nginx, then
the pod) and the Ingress over HTTPS (www.example.com: TLS ended in nginx). wrk keeps its
connections open (HTTP keep-alive), as a browser or a load balancer does. Prints medians over
rounds with a 95 % interval; asserts nothing. Needs root.

    python -m bench.studies.ingress [--mode vxlan] [--rounds 5] [--seconds 5] [--connections 16]
"""
import argparse
import re
import statistics
import sys

from bench.engine.stats import median_ci
from testbed import REPO, manifests
from testbed.api import apply
from testbed.host import netns
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec

PLAIN = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain, namespace: shop}
spec:
  rules:
    - host: plain.example.com
      http:
        paths:
          - {path: /book, pathType: Prefix, backend: {service: {name: book, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: book-np, namespace: shop}
spec:
  type: NodePort
  selector: {app: book}
  ports: [{port: 80, targetPort: 80, nodePort: 30880}]
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text: str) -> dict:
    """{'rps', 'p50_ms', 'p99_ms', 'errors'} of `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        latency[pct] = float(value) * UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {"rps": rps, "p50_ms": latency["50"], "p99_ms": latency["99"],
            "errors": (int(errors.group(1)) if errors else 0) +
            (1 if socket_errors else 0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="vxlan")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--topo", default="topologies/two-racks.yaml")
    args = parser.parse_args(argv)
    spec = load_spec(args.topo, "bench-ing")
    spec = type(spec)(**{**spec.__dict__, "external_client": True})
    with Cluster.create(spec, args.mode) as cluster:
        apply.apply(cluster, manifests.load(str(REPO / "docs" / "examples" / "ingress.yaml")))
        apply.apply(cluster, manifests.parse(PLAIN, "bench.studies.ingress"))
        state = cluster.state
        client = state.hosts["external"].pid
        address = state.services["ingress-nginx/ingress-nginx-controller"].load_balancer_ip
        node = state.nodes["node1"].ip
        paths = {"NodePort (kube-proxy)": ([], f"http://{node}:30880/book"),
                 "Ingress HTTP": (["-H", "Host: plain.example.com"], f"http://{address}/book"),
                 "Ingress HTTPS": (["-H", "Host: www.example.com"], f"https://{address}/book")}
        samples = {name: [] for name in paths}
        for number in range(1, args.rounds + 1):
            for name, (headers, url) in paths.items():
                out = netns.run(netns.in_node(client, [
                    "wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
                    *headers, url]), timeout=args.seconds + 30)
                samples[name].append(parse_wrk(out))
            print(f"round {number}/{args.rounds} done", flush=True)
    print(f"\nwrk, 1 thread, {args.connections} connections, {args.seconds} s per sample, "
          f"{args.rounds} rounds; median [95 % interval] over rounds")
    print(f"{'path':<24} {'requests/s':>24} {'p50 ms':>20} {'p99 ms':>20} {'errors':>7}")
    base = statistics.median(s["rps"] for s in samples["NodePort (kube-proxy)"])
    for name, rows in samples.items():
        cells = []
        for key, digits in (("rps", 0), ("p50_ms", 2), ("p99_ms", 2)):
            values = [r[key] for r in rows]
            low, high, _ = median_ci(values)
            cells.append(f"{statistics.median(values):.{digits}f} [{low:.{digits}f}-"
                         f"{high:.{digits}f}]")
        errors = sum(r["errors"] for r in rows)
        ratio = statistics.median(r["rps"] for r in rows) / base
        print(f"{name:<24} {cells[0]:>24} {cells[1]:>20} {cells[2]:>20} {errors:>7}  "
              f"x{ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
