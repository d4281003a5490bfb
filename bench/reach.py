"""`make bench` until the benchmark harness lands: bring the topology up in every mode this
machine supports, check that every pod reaches every pod and node, print a table, tear down."""
import argparse
import subprocess
import sys
import time

from testbed import doctor, netns
from testbed.cluster import Cluster, load_spec
from testbed.cni import get_mode, mode_names
from testbed.errors import TestbedError
from testbed.inventory import render_table


def reachable(pod, ip):
    return subprocess.run(netns.in_pod(pod, ["ping", "-c1", "-W2", ip]),
                          capture_output=True).returncode == 0


def ping_matrix(state):
    """(pairs that answered, pairs tried, failures) over pod->pod and pod->node."""
    pods, nodes = state.data["pods"], state.data["nodes"]
    targets = [(name, rec["ip"]) for name, rec in pods.items()]
    targets += [(name, rec["ip"]) for name, rec in nodes.items()]
    failures, tried = [], 0
    for src in pods:
        for dst, ip in targets:
            if dst != src:
                tried += 1
                if not reachable(src, ip):
                    failures.append(f"{src}->{dst}")
    return tried - len(failures), tried, failures


def available_modes(spec, caps):
    """[(mode, None)] for modes that can run, [(mode, reason)] for those that cannot."""
    out = []
    for name in mode_names():
        mode = get_mode(name)
        missing = doctor.missing_for(mode.requires, caps)
        if missing:
            out.append((name, f"machine lacks {', '.join(missing)}"))
            continue
        try:
            mode.check(spec)
            out.append((name, None))
        except TestbedError as e:
            out.append((name, str(e).split(": ", 1)[-1]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("topology", nargs="?", default="topologies/default.yaml")
    args = parser.parse_args(argv)
    spec = load_spec(args.topology)
    caps = doctor.capabilities()
    rows = [("MODE", "REACHABLE", "UP s", "DOWN s", "NOTE")]
    failed = False
    for mode, reason in available_modes(spec, caps):
        if reason:
            rows.append((mode, "-", "-", "-", f"skipped: {reason}"))
            continue
        print(f"{mode}: bringing {spec.name} up ...", flush=True)
        cluster = Cluster.create(spec, mode)
        started = time.monotonic()
        with cluster:
            up_s = time.monotonic() - started
            ok, tried, failures = ping_matrix(cluster.state)
        note = "all pairs answer" if not failures else "no answer: " + ", ".join(failures[:6])
        failed |= bool(failures)
        rows.append((mode, f"{ok}/{tried}", f"{up_s:.2f}", f"{cluster.timings['down_s']:.2f}",
                     note))
    print(render_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
