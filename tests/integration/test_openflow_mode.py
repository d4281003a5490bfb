"""The openflow mode: br-int per node, flows from the os-ken controller, VXLAN between nodes."""
import os
import signal
import subprocess
import time

import pytest

from testbed.errors import TestbedError
from testbed.host import netns
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.underlay import controller as controller_mod

from .conftest import TOPO, Footprint, in_pod, run_testbed, transfer, unique_name


def ping(cluster, name, ip, count=1):
    return subprocess.run(in_pod(cluster, name, ["ping", "-c", str(count), "-i", "0.05", "-W2",
                                                 ip]), capture_output=True).returncode == 0


def test_each_node_has_br_int_with_gateway_tunnel_and_pod_ports(make_cluster):
    cluster = make_cluster("default.yaml", "openflow")
    for node in cluster.nodes.values():
        sw = cluster.mode.switches[node.name]
        ports = set(sw.vsctl("list-ports", "br-int").split())
        pods = [p for p, rec in cluster.state.pods.items() if rec.node == node.name]
        hosts = {cluster.state.pods[p].result["interfaces"][0]["name"] for p in pods}
        assert ports == {"gw0", "tun0"} | hosts
        assert sw.vsctl("get", "bridge", "br-int", "fail_mode").strip() == "secure"
        assert sw.vsctl("get", "interface", "tun0", "type").strip() == "vxlan"
        assert "remote_ip=flow" in sw.vsctl("get", "interface", "tun0", "options")
        gw = node.ns.ip_json("addr", "show", "gw0")[0]
        assert [(a["local"], a["prefixlen"]) for a in gw["addr_info"]] == [
            (str(node.lease[1]), node.lease.prefixlen)]
        assert gw["mtu"] == 1450
        for peer in cluster.nodes.values():
            if peer is not node:
                route = node.ns.ip_json("route", "show", str(peer.lease))[0]
                assert route["gateway"] == str(peer.lease[1]) and route["dev"] == "gw0"
                assert "onlink" in route["flags"]


def test_flows_answer_arp_and_steady_state_never_asks_the_controller(make_cluster):
    cluster = make_cluster("default.yaml", "openflow")
    pods = cluster.state.pods
    assert ping(cluster, "node1-pod1", pods["default/node2-pod1"].ip, count=3)
    assert ping(cluster, "node1-pod1", pods["default/node1-pod2"].ip, count=3)
    before = cluster.mode.stats()["packet_in"]
    assert ping(cluster, "node1-pod1", pods["default/node2-pod2"].ip, count=40)
    assert cluster.mode.stats()["packet_in"] == before == 0
    # node1-pod1 learned its neighbours' MACs from flows, not from the pods themselves
    neigh = netns.run(in_pod(cluster, "node1-pod1", ["ip", "neigh", "show"]))
    assert f"{pods['default/node1-pod2'].ip} dev eth0 lladdr" in neigh
    flows = run_testbed("flows", "node1", "--name", cluster.spec.name, check=True).stdout
    assert f"arp_tpa={cluster.nodes['node1'].lease[1]}" in flows
    assert "tun_dst=192.168.1.12" in flows or "set_field:192.168.1.12->tun_dst" in flows
    assert "# openflow controller: 0 packet-ins" in flows


def test_tcp_crosses_the_tunnel_intact(make_cluster):
    cluster = make_cluster("default.yaml", "openflow")
    assert transfer(cluster, 16 << 20)


def test_a_dead_controller_is_reported_and_pods_still_reach_each_other(make_cluster):
    cluster = make_cluster("default.yaml", "openflow")
    pods = cluster.state.pods
    os.kill(cluster.mode.controller.pid, signal.SIGKILL)
    time.sleep(0.2)
    status = cluster.check_daemons()["controller@openflow"]
    assert (status.alive, status.state) == (False, "killed by signal 9")
    for src, dst in (("node1-pod1", "node2-pod1"), ("node2-pod2", "node1-pod2"),
                     ("node1-pod1", "node1-pod2")):
        assert ping(cluster, src, pods[f"default/{dst}"].ip, count=3), \
            f"{src} -> {dst} after the controller died"


def test_a_controller_that_cannot_start_fails_up_clearly(require, monkeypatch):
    from testbed.modes import get_mode
    require(*get_mode("openflow").requires)
    before = Footprint()
    original = controller_mod.ControllerProcess.__init__

    def broken(self, label, apps, run_dir):
        original(self, label, ["no-such-app"], run_dir)
    monkeypatch.setattr(controller_mod.ControllerProcess, "__init__", broken)
    cluster = Cluster.create(load_spec(TOPO / "default.yaml", unique_name()), "openflow")
    with pytest.raises(TestbedError, match="OpenFlow controller could not start"):
        with cluster:
            pass
    assert Footprint().leftovers(before) == []
