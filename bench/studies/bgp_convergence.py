"""BGP convergence of the bgp mode at several sizes: seconds from BIRD's start until every
node has a kernel route to every other node's block, full mesh and with route reflectors.
Prints the figures; asserts nothing. Needs root."""
import argparse
import os
import sys
import tempfile
import time

from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec


def topology(path: str, nodes: int, reflectors: int) -> str:
    with open(path, "w") as f:
        f.write(f"name: conv{nodes}\nracks: [{{name: rack1, subnet: 192.168.0.0/22}}]\n")
        if reflectors:
            names = ", ".join(f"n{i}" for i in range(reflectors))
            f.write(f"bgp: {{routeReflectors: [{names}]}}\n")
        f.write("nodes:\n")
        for i in range(nodes):
            f.write(f"  - {{name: n{i}, pods: 1}}\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5,20,50", help="full-mesh node counts")
    parser.add_argument("--rr-size", type=int, default=50, help="node count with reflectors")
    parser.add_argument("--reflectors", type=int, default=2)
    args = parser.parse_args(argv)
    runs = [(int(n), 0) for n in args.sizes.split(",")] + [(args.rr_size, args.reflectors)]
    print("nodes  peering            BGP sessions  converged s  up s  down s")
    with tempfile.TemporaryDirectory(prefix="testbed-conv-") as tmp:
        for nodes, rr in runs:
            path = topology(os.path.join(tmp, f"t{nodes}-{rr}.yaml"), nodes, rr)
            cluster = Cluster.create(load_spec(path), "bgp")
            started = time.monotonic()
            with cluster:
                up = time.monotonic() - started
                converged = cluster.timings["bgp_converged_s"]
            sessions = nodes * (nodes - 1) // 2 if not rr else \
                rr * (rr - 1) // 2 + rr * (nodes - rr)
            peering = "full mesh" if not rr else f"{rr} route reflectors"
            print(f"{nodes:5d}  {peering:<18} {sessions:12d}  {converged:11.2f}  {up:4.1f}  "
                  f"{cluster.timings['down_s']:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
