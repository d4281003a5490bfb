"""The OVS underlay: racks as OVS bridges under the os-ken fabric app."""
import os
import signal
import subprocess
import time

import pytest

from testbed.errors import TestbedError
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.underlay import controller as controller_mod

from .conftest import TOPO, Footprint, in_pod, pod, run_testbed, transfer, unique_name
from .test_connectivity import full_matrix

OVS = ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "os-ken")


@pytest.fixture
def ovs_cluster(make_cluster, require):
    require(*OVS)
    return lambda topo, mode: make_cluster(topo, mode, underlay="ovs")


def ping(cluster, name, ip, count=1):
    return subprocess.run(in_pod(cluster, name, ["ping", "-c", str(count), "-i", "0.05", "-W2",
                                                 ip]), capture_output=True).returncode == 0


@pytest.mark.parametrize("topo, mode", [
    ("default.yaml", "vxlan"),
    ("default.yaml", "host-gw"),
    ("two-racks.yaml", "vxlan"),
])
def test_modes_work_on_an_ovs_underlay(ovs_cluster, caps, topo, mode):
    cluster = ovs_cluster(topo, mode)
    fabric = cluster.state.fabric
    assert fabric["datapath"] == ("system" if caps.get("openvswitch") else "netdev")
    assert sorted(fabric["racks"]) == sorted(r.name for r in cluster.spec.racks)
    for rack in cluster.spec.racks:  # the rack really is an OVS bridge, fail-secure
        bridge = cluster.fabric.switches[rack.name]
        assert bridge.vsctl("get", "bridge", rack.name, "fail_mode").strip() == "secure"
    assert full_matrix(cluster.state) == []


def test_tcp_moves_through_the_datapath_intact(ovs_cluster):
    # the userspace datapath needs the links' checksum offload off, or TCP stalls
    cluster = ovs_cluster("default.yaml", "host-gw")
    assert transfer(cluster, 16 << 20)


def test_steady_state_traffic_never_reaches_the_controller(ovs_cluster):
    cluster = ovs_cluster("default.yaml", "vxlan")
    target = pod(cluster, "node2-pod1").ip
    assert ping(cluster, "node1-pod1", target, count=3)  # learning happens here
    before = cluster.fabric.controller.stats()
    assert before["packet_in"] > 0
    assert ping(cluster, "node1-pod1", target, count=40)
    after = cluster.fabric.controller.stats()
    assert after["packet_in"] == before["packet_in"]
    flows = run_testbed("flows", "rack1", "--name", cluster.spec.name, check=True).stdout
    learned = [line for line in flows.splitlines() if "priority=10" in line]
    assert len(learned) == 4  # both nodes' MACs: a source check and a forwarding flow each
    assert all("n_packets=0" not in line for line in learned if "dl_dst" in line)


def test_a_dead_controller_is_reported_and_the_flows_keep_forwarding(ovs_cluster):
    cluster = ovs_cluster("default.yaml", "vxlan")
    target = pod(cluster, "node2-pod1").ip
    assert ping(cluster, "node1-pod1", target, count=2)
    os.kill(cluster.fabric.controller.pid, signal.SIGKILL)
    time.sleep(0.2)
    status = cluster.check_daemons()["controller@fabric"]
    assert (status.alive, status.state) == (False, "killed by signal 9")
    assert ping(cluster, "node1-pod1", target, count=20)
    flows = run_testbed("flows", "rack1", "--name", cluster.spec.name, check=True).stdout
    assert "not answering" in flows and "priority=10" in flows


def test_a_controller_that_cannot_start_fails_up_clearly(require, monkeypatch):
    require(*OVS)
    before = Footprint()
    original = controller_mod.ControllerProcess.__init__

    def broken(self, label, apps, run_dir):
        original(self, label, ["no-such-app"], run_dir)
    monkeypatch.setattr(controller_mod.ControllerProcess, "__init__", broken)
    cluster = Cluster.create(load_spec(TOPO / "default.yaml", unique_name(), "ovs"), "vxlan")
    with pytest.raises(TestbedError, match="OpenFlow controller could not start"):
        with cluster:
            pass
    assert Footprint().leftovers(before) == []
