"""The control plane under load: what kubectl users wait for.

Printed (asserts nothing; needs root):
- `kubectl get pods -A` with 1,000 pods stored (the whole command, as a user runs it), p50 of
  several runs, against an API server and etcd of their own;
- from `kubectl run` to the pod's status `Running` with its sandbox made on its node, p50 and
  p99, on a running vxlan cluster;
- watch latency: from a write to the watch event that reports it, p50 and p99;
- `testbed up` of 100 nodes x 10 pods, and until the API lists all 1,000 pods Running.
Targets (the issue's): list <= 0.5 s, Pod Running <= 0.5 s p50, 100 x 10 up <= 60 s.

    python -m bench.studies.api                  # everything, about 3 minutes
    python -m bench.studies.api --skip-scale     # without the 100-node cluster
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import testbed
from bench.studies.scale import topology
from testbed.apiserver.controlplane import ControlPlane, admin_context
from testbed.controllers.client import ApiClient, admin_client
from testbed.model.state import RunState, run_dir_for

REPO = str(testbed.REPO)
KUBECTL = os.path.join(os.path.dirname(sys.executable), "kubectl")
TESTBED = [sys.executable, "-m", "testbed.cli"]


def percentile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def figures(values: list, unit: str = "ms", scale: float = 1000.0) -> str:
    return (f"p50 {percentile(values, 50) * scale:.0f} {unit}, p99 "
            f"{percentile(values, 99) * scale:.0f} {unit} ({len(values)} samples)")


def list_many(count: int, runs: int) -> list[float]:
    """Seconds of `kubectl get pods -A` with `count` pods stored, `runs` times."""
    state = RunState.create(f"benchapi{os.getpid()}")
    plane = ControlPlane(state.name, state.subdir("control-plane"))
    try:
        plane.start(state)
        client = ApiClient(plane.server, admin_context(plane.pki))
        for i in range(count):
            namespace = f"ns{i % 10}"
            if i < 10:
                client.write("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
            client.write("POST", f"/api/v1/namespaces/{namespace}/pods", {
                "metadata": {"name": f"pod-{i}", "labels": {"app": f"a{i % 7}"}},
                "spec": {"nodeName": f"node{i % 100}",
                         "containers": [{"name": "c", "image": "nginx"}]}})
        times = []
        for _ in range(runs):
            started = time.monotonic()
            out = subprocess.run([KUBECTL, "--kubeconfig", plane.kubeconfig_path, "get", "pods",
                                  "-A"], capture_output=True, text=True, check=True).stdout
            times.append(time.monotonic() - started)
            assert len(out.splitlines()) == count + 1, "kubectl listed another number of pods"
        return times
    finally:
        plane.stop(state)
        shutil.rmtree(state.dir, ignore_errors=True)


def up(name: str, topo: str, mode: str = "vxlan") -> float:
    started = time.monotonic()
    subprocess.run(TESTBED + ["up", "--topo", topo, "--mode", mode, "--no-cli", "--name", name],
                   check=True, capture_output=True, text=True, cwd=REPO)
    return time.monotonic() - started


def down(name: str) -> None:
    subprocess.run(TESTBED + ["down", "--name", name], capture_output=True, cwd=REPO)


def client_of(name: str) -> tuple[ApiClient, str]:
    """The admin's client of a running cluster's API server, and its kubeconfig."""
    record = RunState.load(run_dir_for(name)).control_plane
    return admin_client(record), record["kubeconfig"]


def pods_running(name: str, count: int, poll_s: float = 0.002) -> list[float]:
    """Seconds from `kubectl run` starting to the pod reported Running, `count` pods."""
    client, kubeconfig = client_of(name)
    times = []
    for i in range(count):
        pod = f"timed-{i}"
        started = time.monotonic()
        subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "run", pod, "--image=nginx"],
                       check=True, capture_output=True)
        while True:
            found = client.get(f"/api/v1/namespaces/default/pods/{pod}")
            if found and (found.get("status") or {}).get("phase") == "Running":
                break
            time.sleep(poll_s)
        times.append(time.monotonic() - started)
    return times


def watch_latency(name: str, count: int) -> list[float]:
    """Seconds from a label change sent to the watch event that reports it."""
    client, _ = client_of(name)
    client.write("POST", "/api/v1/namespaces/default/configmaps",
                 {"metadata": {"name": "watched"}, "data": {"a": "1"}})
    seen = {}
    ready = threading.Event()

    def watch():
        req = urllib.request.Request(
            f"{client.server}/api/v1/namespaces/default/configmaps?watch=1&"
            f"fieldSelector=metadata.name%3Dwatched&timeoutSeconds=120")
        with urllib.request.urlopen(req, context=client.context) as stream:
            ready.set()
            for line in stream:
                event = json.loads(line)
                mark = (event["object"]["metadata"].get("labels") or {}).get("mark")
                if mark is not None:
                    seen[int(mark)] = time.monotonic()
                    if int(mark) == count - 1:
                        return
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(10)
    time.sleep(0.5)  # the watch's initial events are through
    sent = {}
    for i in range(count):
        sent[i] = time.monotonic()
        client.write("PATCH", "/api/v1/namespaces/default/configmaps/watched",
                     {"metadata": {"labels": {"mark": str(i)}}},
                     "application/merge-patch+json")
        time.sleep(0.02)
    thread.join(30)
    return [seen[i] - sent[i] for i in range(count) if i in seen]


def scale_up(tmp: str, nodes: int, pods: int) -> tuple[float, float]:
    """(seconds of `testbed up`, seconds until the API lists every pod Running)."""
    path = os.path.join(tmp, "scale.yaml")
    topology(path, nodes, pods, 0)
    name = f"bapi{os.getpid()}s"
    started = time.monotonic()
    try:
        up_s = up(name, path)
        client, _ = client_of(name)
        while True:
            listed = client.get("/api/v1/pods")["items"]
            running = sum(1 for p in listed if (p.get("status") or {}).get("phase") == "Running")
            if running >= nodes * pods:
                return up_s, time.monotonic() - started
            time.sleep(0.2)
    finally:
        down(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=1000, help="pods stored for the list")
    parser.add_argument("--samples", type=int, default=30, help="pods timed to Running")
    parser.add_argument("--skip-scale", action="store_true", help="no 100-node cluster")
    args = parser.parse_args(argv)
    times = list_many(args.pods, 11)
    print(f"kubectl get pods -A, {args.pods} pods: {figures(times)} (target p50 <= 500 ms)",
          flush=True)
    name = f"bapi{os.getpid()}"
    try:
        up(name, os.path.join(REPO, "topologies", "default.yaml"))
        time.sleep(1)
        times = pods_running(name, args.samples)
        print(f"kubectl run to Running: {figures(times)} (target p50 <= 500 ms)", flush=True)
        times = watch_latency(name, 100)
        print(f"watch latency: {figures(times, 'us', 1e6)}", flush=True)
    finally:
        down(name)
    if not args.skip_scale:
        with tempfile.TemporaryDirectory(prefix="testbed-api-") as tmp:
            up_s, listed_s = scale_up(tmp, 100, 10)
        print(f"testbed up, 100 nodes x 10 pods: {up_s:.1f} s; every pod Running in the API "
              f"after {listed_s:.1f} s (target <= 60 s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
