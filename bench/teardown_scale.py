"""Teardown at scale: bring an N-node x P-pod cluster up through `testbed up --no-cli` (its
supervisor, as users run it), take it down with `testbed down`, and report the seconds each
took, down's exit code and what was left: namespaces, processes the run recorded, its run
directory. Prints the figures; asserts nothing.

    python -m bench.teardown_scale [--nodes 100] [--pods 10] [--mode vxlan]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from testbed.core.state import RunState, run_dir_for
from testbed.host import netns
from testbed.host.processes import pid_is

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def topology(path, nodes, pods):
    with open(path, "w") as f:
        f.write("nodes:\n" + "".join(f"  - {{name: n{i}, pods: {pods}}}\n"
                                      for i in range(1, nodes + 1)))
    return path


def testbed(*args):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=REPO,
                          capture_output=True, text=True)
    return proc, time.monotonic() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--mode", default="vxlan")
    args = parser.parse_args(argv)
    name = f"scale{os.getpid()}"
    netns_before = set(netns.netns_list())
    with tempfile.TemporaryDirectory(prefix="testbed-scale-") as tmp:
        topo = topology(os.path.join(tmp, "scale.yaml"), args.nodes, args.pods)
        up, up_s = testbed("up", "--topo", topo, "--mode", args.mode, "--no-cli", "--name", name)
        if up.returncode != 0:
            print(f"up failed ({up_s:.1f} s): {up.stderr.strip()}")
            testbed("clean", "--name", name)
            return 1
        state = RunState.load(run_dir_for(name))
        pids = list(state.owned.pids)
        made = set(netns.netns_list()) - netns_before
        down, down_s = testbed("down", "--name", name)
    left_netns = (set(netns.netns_list()) - netns_before) & made
    left_pids = [p for p in pids if pid_is(p.pid, p.start)]
    left_dir = os.path.isdir(run_dir_for(name))
    print(f"{args.nodes} nodes x {args.pods} pods, {args.mode}: {len(made)} named namespaces, "
          f"{len(pids)} recorded processes")
    print(f"up {up_s:.1f} s; down {down_s:.1f} s, exit {down.returncode}")
    print(f"left: {len(left_netns)} namespaces, {len(left_pids)} processes, run directory "
          f"{'kept' if left_dir else 'gone'}")
    if down.returncode != 0:
        print(down.stderr.strip())
    return 0 if not (left_netns or left_pids or left_dir) else 1


if __name__ == "__main__":
    sys.exit(main())
