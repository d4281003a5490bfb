"""Integration tests build real clusters: root, Mininet and the CNI plugins are required."""
import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from testbed.host import netns
from testbed.host.processes import pid_is
from testbed.kubelet.runtime import NETNS_ETC
from testbed.lifecycle import doctor
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.model.state import RUN_ROOT
from testbed.modes.ebpf.mode import PIN_ROOT

REPO = Path(__file__).resolve().parents[2]
TOPO = REPO / "topologies"


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests build namespaces: run as root")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def caps():
    return doctor.capabilities()


@pytest.fixture
def require(caps):
    def check(*features):
        if any(f not in caps for f in features):  # a mode registered since caps were probed
            caps.update(doctor.capabilities())
        missing = doctor.missing_for(features, caps)
        if missing:
            pytest.skip(f"this machine lacks {', '.join(missing)} (see `testbed doctor`)")
    return check


def unique_name():
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_cluster(require):
    """Build clusters in this process; all are torn down (and checked gone) after the test."""
    built = []

    def make(topo, mode, name=None, underlay=None, control_plane=False, ip_family=None):
        from testbed.modes import get_mode
        require(*get_mode(mode).requires)
        spec = load_spec(TOPO / topo, name or unique_name(), underlay, ip_family=ip_family)
        cluster = Cluster.create(spec, mode, control_plane=control_plane)
        built.append(cluster)
        return cluster.__enter__()

    yield make
    for cluster in built:
        cluster.__exit__(None, None, None)


# A TCP transfer of known bytes: the receiver prints the SHA-256 of what arrived.
SINK = ("import hashlib,socket,sys; v6=sys.argv[1:]==['6']; "
        "s=socket.socket(socket.AF_INET6 if v6 else socket.AF_INET); "
        "s.bind(('::' if v6 else '0.0.0.0',5001)); s.listen(1); "
        "print('ready',flush=True); c,_=s.accept(); h=hashlib.sha256()\n"
        "while (b:=c.recv(1<<20)): h.update(b)\n"
        "print(h.hexdigest())")
SOURCE = ("import random,socket,sys; c=socket.create_connection((sys.argv[1],5001)); "
          "c.sendall(random.Random(7).randbytes(int(sys.argv[2]))); c.close()")


def pod(cluster_or_state, name, namespace="default"):
    """A pod's record by name (and Kubernetes namespace): ip, netns (its sandbox), node, ..."""
    state = getattr(cluster_or_state, "state", cluster_or_state)
    return state.pods[f"{namespace}/{name}"]


def in_pod(cluster_or_state, name, argv, namespace="default"):
    """argv run in a pod's sandbox, the pod named as in Kubernetes."""
    return netns.in_pod(pod(cluster_or_state, name, namespace).netns, argv)


def pod_address(record, family=4):
    """A pod's address of an IP family (4 or 6)."""
    return next(ip for ip in record.addresses if (":" in ip) == (family == 6))


def transfer(cluster, size, src="node1-pod1", dst="node2-pod1", family=4):
    """Send `size` pseudo-random bytes from pod src to pod dst over TCP (to its address of
    `family`); True if they arrived intact."""
    sink = subprocess.Popen(in_pod(cluster, dst, ["python3", "-c", SINK, str(family)]),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        target = pod_address(pod(cluster, dst), family)
        subprocess.run(in_pod(cluster, src, ["python3", "-c", SOURCE, target, str(size)]),
                       check=True, timeout=60)
        received = sink.communicate(timeout=30)[0].strip()
    finally:
        sink.kill()
        sink.wait()
    return received == hashlib.sha256(random.Random(7).randbytes(size)).hexdigest()


def run_testbed(*args, timeout=120, check=False):
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"testbed {' '.join(map(str, args))} exited {proc.returncode}: "
                             f"{proc.stderr}{proc.stdout}")
    return proc


def root_links():
    return {entry["ifname"] for entry in json.loads(netns.run(["ip", "-j", "link", "show"]))}


class Footprint:
    """What exists on the machine that a run could leave behind, to compare before and after."""

    def __init__(self):
        self.netns = set(netns.netns_list())
        self.links = root_links()
        self.runs = set(os.listdir(RUN_ROOT)) if os.path.isdir(RUN_ROOT) else set()
        self.netns_etc = set(os.listdir(NETNS_ETC)) if os.path.isdir(NETNS_ETC) else set()
        self.bpf_pins = set(os.listdir(PIN_ROOT)) if os.path.isdir(PIN_ROOT) else set()

    def leftovers(self, since, pids=()):
        left = []
        left += [f"netns {n}" for n in self.netns - since.netns]
        left += [f"link {n}" for n in self.links - since.links]
        left += [f"run dir {n}" for n in self.runs - since.runs]
        left += [f"{NETNS_ETC}/{n}" for n in self.netns_etc - since.netns_etc]
        left += [f"{PIN_ROOT}/{n}" for n in self.bpf_pins - since.bpf_pins]
        left += [f"process {p.pid} ({p.what})" for p in pids if pid_is(p.pid, p.start)]
        return left


@pytest.fixture
def footprint():
    return Footprint


def pod_ips(state):
    """{pod name: ip} of the default namespace's pods."""
    return {rec.name: rec.ip for rec in state.pods.values()
            if rec.namespace == "default"}
