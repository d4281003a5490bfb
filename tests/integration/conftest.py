"""Integration tests build real clusters: root, Mininet and the CNI plugins are required."""
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from testbed import doctor, netns
from testbed.cluster import Cluster, load_spec
from testbed.state import RUN_ROOT, pid_is

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

    def make(topo, mode, name=None):
        from testbed.cni import get_mode
        require(*get_mode(mode).requires)
        spec = load_spec(TOPO / topo, name or unique_name())
        cluster = Cluster.create(spec, mode)
        built.append(cluster)
        return cluster.__enter__()

    yield make
    for cluster in built:
        cluster.__exit__(None, None, None)


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

    def leftovers(self, since, pids=()):
        left = []
        left += [f"netns {n}" for n in self.netns - since.netns]
        left += [f"link {n}" for n in self.links - since.links]
        left += [f"run dir {n}" for n in self.runs - since.runs]
        left += [f"process {p['pid']} ({p['what']})" for p in pids if pid_is(p["pid"], p["start"])]
        return left


@pytest.fixture
def footprint():
    return Footprint


def pod_ips(state):
    return {name: rec["ip"] for name, rec in state.data["pods"].items()}
