"""The underlay: racks, router, link caps — and that the root namespace gets none of it."""
import ipaddress
import json

import pytest

from bench.tools import iperf3
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec

from .conftest import TOPO, unique_name


def test_root_namespace_gets_no_emulated_address_or_link(make_cluster, footprint):
    before = footprint()
    cluster = make_cluster("two-racks.yaml", "vxlan")
    assert footprint().links == before.links, "racks must not put bridges or ports in root"
    emulated = [ipaddress.ip_network("10.244.0.0/16")] + [r.subnet for r in cluster.spec.racks]
    for entry in json.loads(netns.run(["ip", "-j", "addr", "show"])):
        for addr in entry.get("addr_info", []):
            ip = ipaddress.ip_address(addr["local"])
            assert not any(ip in net for net in emulated), f"root has {ip} on {entry['ifname']}"


def test_router_joins_racks_and_nodes_route_through_it(make_cluster):
    cluster = make_cluster("two-racks.yaml", "vxlan")
    node3 = cluster.nodes["node3"]
    default = [r for r in node3.ns.ip_json("route", "show") if r["dst"] == "default"][0]
    assert default["gateway"] == "192.168.2.1"
    out = node3.ns.run("ping", "-c1", "-W2", "192.168.1.11")
    assert "ttl=63" in out, "node1 is one routed hop away from node3"


def test_bandwidth_caps_underlay_links(tmp_path, require):
    require("htb", "vxlan")
    topo = tmp_path / "capped.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "bandwidth: 50\n")
    cluster = Cluster.create(load_spec(topo, unique_name()), "vxlan")
    with cluster:
        n1, n2 = (cluster.state.nodes[n] for n in ("node1", "node2"))
        gbps = iperf3.tcp(lambda a: netns.in_node(n2.pid, a),
                          lambda a: netns.in_node(n1.pid, a), n2.ip, seconds=2)["gbps"]
    assert 0.030 < gbps < 0.055, f"{gbps * 1000:.1f} Mbit/s through a 50 Mbit/s cap"


def test_caps_above_one_gigabit_are_applied_too(tmp_path, require):
    # Mininet's own interface class ignores rates above 1000 Mbit/s with just a log line
    require("htb")
    topo = tmp_path / "fast.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "bandwidth: 10000\n")
    cluster = Cluster.create(load_spec(topo, unique_name()), "host-gw")
    with cluster:
        classes = cluster.nodes["node1"].ns.run("tc", "class", "show", "dev", "eth0")
    assert "htb" in classes and "rate 10Gbit" in classes


def test_delay_is_refused_clearly_without_netem(tmp_path, caps):
    if caps.get("netem"):
        pytest.skip("this kernel has netem; the refusal only applies without it")
    topo = tmp_path / "delayed.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "delay: 5\n")
    with pytest.raises(TestbedError, match="delay needs the kernel's netem qdisc"):
        Cluster.create(load_spec(topo, unique_name()), "vxlan")


def test_delay_adds_round_trip_time_with_netem(tmp_path, require):
    require("netem", "vxlan")
    topo = tmp_path / "delayed.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "delay: 5\n")
    with Cluster.create(load_spec(topo, unique_name()), "vxlan") as cluster:
        out = cluster.nodes["node1"].ns.run("ping", "-c3", "-i0.2", "192.168.1.12")
    avg = float(out.rsplit("=", 1)[1].split("/")[1])
    assert avg >= 19, "5 ms at both ends of two links is 20 ms round trip"
