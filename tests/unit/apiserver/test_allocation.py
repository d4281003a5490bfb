"""ClusterIPs and NodePorts as kube-apiserver allocates them, without a server."""
import ipaddress
import random

import pytest

from testbed.apiserver import allocation
from testbed.apiserver.status import ApiError


def service(**spec):
    return {"type": "ClusterIP", "ports": [{"port": 80}], **spec}


def test_dynamic_addresses_come_from_the_upper_band_and_asked_ones_are_kept():
    cidr = ipaddress.IPv4Network("10.96.0.0/12")
    assert allocation.static_band(cidr.num_addresses, 16, 256) == 256
    rng, used = random.Random(1), set()
    for i in range(50):
        spec = service()
        allocation.allocate_cluster_ip(f"s{i}", spec, used, rng)
        ip = ipaddress.IPv4Address(spec["clusterIP"])
        assert ip in cidr and int(ip) - int(cidr.network_address) >= 256
        assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["clusterIP"] not in used
        used.add(spec["clusterIP"])
    asked = service(clusterIP="10.96.0.20")
    allocation.allocate_cluster_ip("static", asked, used, rng)
    assert asked["clusterIP"] == "10.96.0.20"
    for ip, words in (("10.96.0.20", "provided IP is already allocated"),
                      ("10.200.0.1", "is not in the valid range"),
                      ("10.96.0.300", "must be a valid IP address")):
        with pytest.raises(ApiError) as refused:
            allocation.allocate_cluster_ip("x", service(clusterIP=ip), used | {"10.96.0.20"},
                                           rng)
        assert refused.value.code == 422 and words in refused.value.message
        assert refused.value.message.startswith('Service "x" is invalid: spec.clusterIP')
    headless = service(clusterIP="None")
    allocation.allocate_cluster_ip("h", headless, used, rng)
    assert headless["clusterIPs"] == ["None"]


def test_a_manifest_asking_for_a_low_node_port_after_others_applies_unchanged():
    """kube-proxy's own test Services: some ask for no nodePort, a later one for 30002."""
    rng, used = random.Random(2), set()
    assert allocation.static_band(len(allocation.NODE_PORT_RANGE), 32, 128) == 86
    for i in range(40):
        spec = service(type="NodePort")
        allocation.allocate_node_ports(f"s{i}", spec, used, rng)
        port = spec["ports"][0]["nodePort"]
        assert 30086 <= port <= 32767 and port not in used
        used.add(port)
    asked = service(type="NodePort", ports=[{"port": 80, "nodePort": 30002}])
    allocation.allocate_node_ports("late", asked, used, rng)
    assert asked["ports"][0]["nodePort"] == 30002
    used.add(30002)
    with pytest.raises(ApiError) as refused:
        allocation.allocate_node_ports("again", service(
            type="NodePort", ports=[{"port": 80, "nodePort": 30002}]), used, rng)
    assert refused.value.message == ('Service "again" is invalid: spec.ports[0].nodePort: '
                                     'Invalid value: 30002: provided port is already allocated')
    local = service(type="LoadBalancer", externalTrafficPolicy="Local")
    allocation.allocate_node_ports("lb", local, used, rng)
    assert local["healthCheckNodePort"] not in used | {local["ports"][0]["nodePort"]}
    plain = service()
    allocation.allocate_node_ports("c", plain, used, rng)
    assert "nodePort" not in plain["ports"][0]


def test_the_addresses_and_ports_in_use_are_read_from_the_stored_services():
    ips, ports = allocation.in_use([
        {"spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                  "ports": [{"port": 53}]}},
        {"spec": {"clusterIP": "None", "ports": [{"port": 80}]}},
        {"spec": {"clusterIP": "10.100.0.7", "ports": [{"port": 80, "nodePort": 31000}],
                  "healthCheckNodePort": 32000}}])
    assert ips == {"10.96.0.10", "10.100.0.7"} and ports == {31000, 32000}


DUAL = allocation.service_ranges("10.96.0.0/12,fd00:10:96::/112")


def test_a_dual_stack_cluster_allocates_a_cluster_ip_per_family_of_the_service():
    rng = random.Random(3)
    both = service(ipFamilyPolicy="RequireDualStack")
    allocation.allocate_cluster_ip("both", both, set(), rng, DUAL)
    assert both["ipFamilies"] == ["IPv4", "IPv6"] and both["ipFamilyPolicy"] == \
        "RequireDualStack"
    v4, v6 = map(ipaddress.ip_address, both["clusterIPs"])
    assert v4 in DUAL["IPv4"] and v6 in DUAL["IPv6"] and both["clusterIP"] == str(v4)
    six = service(ipFamilies=["IPv6"])
    allocation.allocate_cluster_ip("six", six, set(), rng, DUAL)
    assert (six["ipFamilyPolicy"], len(six["clusterIPs"])) == ("SingleStack", 1)
    assert ipaddress.ip_address(six["clusterIP"]) in DUAL["IPv6"]
    plain = service()
    allocation.allocate_cluster_ip("plain", plain, set(), rng, DUAL)
    assert (plain["ipFamilies"], plain["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")
    asked = service(clusterIPs=["10.96.0.30", "fd00:10:96::30"])
    allocation.allocate_cluster_ip("asked", asked, set(), rng, DUAL)
    assert asked["clusterIPs"] == ["10.96.0.30", "fd00:10:96::30"]
    assert asked["ipFamilyPolicy"] == "RequireDualStack"


def test_dual_stack_refusals_are_the_api_server_s():
    with pytest.raises(ApiError) as refused:
        allocation.allocate_cluster_ip("x", service(ipFamilyPolicy="RequireDualStack"), set(),
                                       random.Random(1))
    assert refused.value.code == 422 and refused.value.message == (
        'Service "x" is invalid: spec.ipFamilyPolicy: Invalid value: "RequireDualStack": '
        "this cluster is not configured for dual-stack services")
    with pytest.raises(ApiError) as refused:
        allocation.allocate_cluster_ip("y", service(ipFamilies=["IPv6"],
                                                    clusterIP="10.96.0.40"), set(),
                                       random.Random(1), DUAL)
    assert "must match IP family of clusterIP" in refused.value.message
