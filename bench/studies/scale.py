"""Clusters at scale: bring-up, convergence, a sample of cross-node pings, memory and teardown.

Each cluster is brought up as users do it (`testbed up --no-cli`, its supervisor owning it),
then checked and taken down with `testbed down`. Printed per cluster: the time of every phase
of the bring-up (underlay, nodes, mode setup, peers, daemons, convergence, pods, manifests),
the whole bring-up and teardown, the pings answered out of a sample of random pod pairs on
different nodes, the memory the cluster took (memory in use before and after, as `free`
counts it, so the kernel's namespaces and devices count with the processes) and what
teardown left. Prints the figures; asserts nothing.
Needs root.

    python -m bench.studies.scale                         # the default plan, about 10 minutes
    python -m bench.studies.scale --modes vxlan --sizes 100 --pods 10
    python -m bench.studies.scale --modes bgp --sizes 500 --pods 1 --reflectors 2
    python -m bench.studies.scale --modes bgp --sizes 100 --hold-time 240    # Calico's BGP timers
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import testbed
from testbed.host import netns
from testbed.host.parallel import for_each
from testbed.host.processes import pid_is
from testbed.lifecycle.progress import PHASES
from testbed.model.state import RunState, run_dir_for

REPO = str(testbed.REPO)
PING_PAIRS = 50
CALICO_HOLD_TIME = 240  # BIRD's default, which Calico keeps (the testbed's is 9 s)
# (mode, nodes, pods per node, route reflectors, BGP hold time or None for the testbed's)
DEFAULT_PLAN = [(mode, nodes, 10, 0, None) for mode in ("vxlan", "host-gw", "bgp")
                for nodes in (10, 50, 100)] + [
    ("bgp", 100, 10, 0, CALICO_HOLD_TIME), ("bgp", 100, 10, 2, None), ("vxlan", 100, 0, 0, None),
    ("bgp", 100, 1, 0, None), ("bgp", 100, 1, 2, None), ("bgp", 500, 1, 2, None)]


@dataclass
class Result:
    mode: str
    nodes: int
    pods: int
    reflectors: int
    hold: int | None = None
    up_s: float = 0.0
    down_s: float = 0.0
    phases: dict = field(default_factory=dict)
    pings: tuple = (0, 0)          # (answered, sent)
    memory_mb: float = 0.0
    left: list = field(default_factory=list)
    error: str = ""


def topology(path: str, nodes: int, pods: int, reflectors: int,
             hold: int | None = None) -> str:
    """One rack of `nodes` nodes with `pods` pods each. flannel's default podCIDR holds 256
    /24 leases: a larger cluster gets a /12."""
    pod_cidr = "10.244.0.0/16" if nodes <= 256 else "10.240.0.0/12"
    with open(path, "w") as f:
        f.write(f"podCIDR: {pod_cidr}\nracks: [{{name: rack1, subnet: 192.168.0.0/20}}]\n")
        bgp = [f"holdTime: {hold}"] if hold else []
        if reflectors:
            bgp.append(f"routeReflectors: [{', '.join(f'n{i}' for i in range(1, reflectors + 1))}]")
        if bgp:
            f.write(f"bgp: {{{', '.join(bgp)}}}\n")
        f.write("nodes:\n" + "".join(f"  - {{name: n{i}, pods: {pods}}}\n"
                                      for i in range(1, nodes + 1)))
    return path


def testbed(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=REPO,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - started


def memory_used_mb() -> float:
    """Memory in use, as `free` counts it (total - free - buffers - page cache - reclaimable
    slab): what the cache happens to hold does not move it."""
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])
    return (info["MemTotal"] - info["MemFree"] - info["Buffers"] - info["Cached"]
            - info["SReclaimable"]) / 1024


def settled_memory_used_mb(timeout: float = 30.0) -> float:
    """memory_used_mb() once it stops falling: the kernel frees a deleted namespace's memory
    later, in a work queue, so the previous cluster's may still be going."""
    last = memory_used_mb()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = memory_used_mb()
        if last - now < 2.0:
            return now
        last = now
    return last


def ping_sample(state: RunState, pairs: int, seed: int = 1) -> tuple[int, int]:
    """(answered, sent): one ping each between `pairs` random pods on different nodes."""
    pods = [p for p in state.pods.values() if p.ip]
    rng = random.Random(seed)
    chosen = []
    while len(chosen) < pairs and len({p.node for p in pods}) > 1:
        a, b = rng.sample(pods, 2)
        if a.node != b.node:
            chosen.append((a, b))
    answered = []

    def ping(pair):
        a, b = pair
        proc = subprocess.run(netns.in_pod(a.netns, ["ping", "-c", "1", "-W", "2", b.ip]),
                              capture_output=True)
        if proc.returncode == 0:
            answered.append(pair)
    for_each(chosen, ping)
    return len(answered), len(chosen)


def measure(mode: str, nodes: int, pods: int, reflectors: int, hold: int | None,
            tmp: str) -> Result:
    result = Result(mode, nodes, pods, reflectors, hold)
    name = f"scale{os.getpid()}"
    topo = topology(os.path.join(tmp, f"{mode}-{nodes}-{pods}.yaml"), nodes, pods, reflectors,
                    hold)
    netns_before = set(netns.netns_list())
    used_before = settled_memory_used_mb()
    up, result.up_s = testbed("up", "--topo", topo, "--mode", mode, "--no-cli", "--name", name)
    if up.returncode != 0:
        result.error = up.stderr.strip().splitlines()[-1] if up.stderr.strip() else "up failed"
        testbed("clean", "--name", name)
        return result
    result.memory_mb = memory_used_mb() - used_before
    state = RunState.load(run_dir_for(name))
    result.phases = dict(state.timings)
    result.pings = ping_sample(state, PING_PAIRS)
    pids = list(state.owned.pids)
    made = set(netns.netns_list()) - netns_before
    down, result.down_s = testbed("down", "--name", name)
    result.left = sorted((set(netns.netns_list()) & made)) + \
        [f"pid {p.pid}" for p in pids if pid_is(p.pid, p.start)]
    if os.path.isdir(run_dir_for(name)):
        result.left.append(f"run directory {run_dir_for(name)}")
    if down.returncode != 0:
        result.error = down.stderr.strip()
    return result


HEADER = ("mode      nodes  pods  peering      " +
          " ".join(f"{p[:8]:>8}" for p in PHASES) +
          "    up s  down s  pings    MB   left")


def row(r: Result) -> str:
    peering = "" if r.mode != "bgp" else ("mesh" if not r.reflectors else f"{r.reflectors} RR")
    if r.hold:
        peering += f" {r.hold}s"
    head = f"{r.mode:<9} {r.nodes:5d} {r.nodes * r.pods:5d}  {peering:<11} "
    if r.error:
        return head + f" error: {r.error}"
    phases = " ".join(f"{r.phases.get(f'{p}_s', 0.0):8.2f}" for p in PHASES)
    pings = f"{r.pings[0]}/{r.pings[1]}"
    return (head + phases + f"  {r.up_s:6.1f}  {r.down_s:6.1f}  {pings:>5} {r.memory_mb:5.0f}"
            f"   {len(r.left)}")


def per_unit_memory(results: list[Result]) -> str:
    """Memory per node and per pod, from a cluster with pods and one of the same size
    without (same mode)."""
    lines = []
    for bare in (r for r in results if r.pods == 0 and not r.error):
        full = [r for r in results if r.mode == bare.mode and r.nodes == bare.nodes
                and r.pods and not r.error]
        for r in full:
            per_pod = (r.memory_mb - bare.memory_mb) / (r.nodes * r.pods)
            lines.append(f"{r.mode}: {bare.memory_mb / bare.nodes:.1f} MB per node, "
                         f"{per_pod:.2f} MB per pod ({r.nodes} nodes, {r.pods} pods each)")
    return "\n".join(lines)


def parse_plan(args: argparse.Namespace) -> list[tuple[str, int, int, int, int | None]]:
    if not (args.modes or args.sizes):
        return DEFAULT_PLAN
    modes = (args.modes or "vxlan,host-gw,bgp").split(",")
    sizes = [int(n) for n in (args.sizes or "10,50,100").split(",")]
    return [(m, n, args.pods, args.reflectors if m == "bgp" else 0,
             args.hold_time if m == "bgp" else None) for m in modes for n in sizes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", help="comma-separated (default plan when neither "
                        "--modes nor --sizes is given)")
    parser.add_argument("--sizes", help="node counts, comma-separated")
    parser.add_argument("--pods", type=int, default=10, help="pods per node")
    parser.add_argument("--reflectors", type=int, default=0,
                        help="bgp: this many route reflectors (0: full mesh)")
    parser.add_argument("--hold-time", type=int,
                        help=f"bgp: BGP hold time in s ({CALICO_HOLD_TIME}: Calico's)")
    args = parser.parse_args(argv)
    print("seconds per phase of the bring-up; pings answered / sent between random pods on "
          "different nodes; MB: memory the cluster took; left: objects teardown left")
    print(HEADER, flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="testbed-scale-") as tmp:
        for mode, nodes, pods, reflectors, hold in parse_plan(args):
            results.append(measure(mode, nodes, pods, reflectors, hold, tmp))
            print(row(results[-1]), flush=True)
    memory = per_unit_memory(results)
    if memory:
        print(memory)
    bad = [r for r in results if r.error or r.left or r.pings[0] != r.pings[1]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
