"""What the records say of a node: the addresses its kubelet reports, per cluster family."""
from testbed.model.records import NodeRecord


def test_a_node_reports_its_addresses_of_the_cluster_s_families():
    assert NodeRecord(1, "192.168.1.11", "r").addresses_by_family == ["192.168.1.11"]
    dual = NodeRecord(1, "192.168.1.11", "r", ip_v6="fd00:192:168:1::11")
    assert dual.addresses_by_family == ["192.168.1.11", "fd00:192:168:1::11"]
    # IPv6-only: the underlay keeps its IPv4 address, the kubelet's node IP is the IPv6 one
    only = NodeRecord(1, "192.168.1.11", "r", ip_v6="fd00:192:168:1::11", ipv6_only=True)
    assert only.addresses_by_family == ["fd00:192:168:1::11"]
