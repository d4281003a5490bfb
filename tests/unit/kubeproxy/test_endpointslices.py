"""EndpointSlices and the controller's topology hints; kube-proxy's use of them."""
import dataclasses

from testbed.kubeproxy import endpointslices, services
from testbed.kubeproxy.modes import iptables
from testbed.kubeproxy.types import Endpoint, ServicePort, plan

from ..states import state_from


def test_hints_follow_each_zones_share_of_the_nodes():
    two_racks = ["rack1", "rack1", "rack2", "rack2"]
    # an endpoint per node: each zone keeps its own
    assert endpointslices.zone_hints(["rack1", "rack1", "rack2", "rack2"], two_racks) == \
        ["rack1", "rack1", "rack2", "rack2"]
    # three of four in rack1: one moves to rack2 (the last of rack1's)
    assert endpointslices.zone_hints(["rack1", "rack1", "rack1", "rack2"], two_racks) == \
        ["rack1", "rack1", "rack2", "rack2"]
    # all four in rack1: two move, rack2 gets its share
    assert endpointslices.zone_hints(["rack1"] * 4, two_racks) == \
        ["rack1", "rack1", "rack2", "rack2"]
    # fewer endpoints than the zones' minimums need, or than zones, or one zone: no hints
    assert endpointslices.zone_hints(["rack1", "rack2", "rack2"], two_racks) is None
    assert endpointslices.zone_hints(["rack1"], two_racks) is None
    assert endpointslices.zone_hints(["rack1", "rack1"], ["rack1", "rack1"]) is None
    # a zone with three times the nodes takes three in four
    assert endpointslices.zone_hints(["a"] * 4, ["a", "a", "a", "b"]) == ["a", "a", "a", "b"]


STATE = state_from({
    "nodes": {"node1": {"ip": "192.168.1.11", "rack": "rack1"},
              "node2": {"ip": "192.168.1.12", "rack": "rack1"},
              "node3": {"ip": "192.168.2.11", "rack": "rack2", "zone": "eu-b"},
              "node4": {"ip": "192.168.2.12", "rack": "rack2", "zone": "eu-b"}},
    "pods": {name: {"namespace": "shop", "ip": ip, "node": node, "labels": {"app": "web"}}
             for name, ip, node in (("web-1", "10.244.1.5", "node1"),
                                    ("web-1b", "10.244.1.6", "node1"),
                                    ("web-2", "10.244.2.5", "node2"),
                                    ("web-3", "10.244.3.5", "node3"))},
    "services": {"shop/web": {"type": "ClusterIP", "cluster_ip": "10.96.0.11",
                              "selector": {"app": "web"}, "topology_mode": "Auto",
                              "ports": [{"name": "http", "port": 80, "target_port": 8080,
                                         "protocol": "TCP", "node_port": 0}]}},
})


def test_a_slice_names_each_endpoints_node_zone_and_hint():
    (slice_,) = endpointslices.slices(STATE, "shop/web", services.endpoints(STATE, "shop/web"))
    assert slice_["metadata"]["name"].startswith("web-") and len(slice_["metadata"]["name"]) == 9
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
    assert slice_["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    eps = slice_["endpoints"]
    assert [(e["addresses"][0], e["nodeName"], e["zone"]) for e in eps] == [
        ("10.244.1.5", "node1", "rack1"), ("10.244.1.6", "node1", "rack1"),
        ("10.244.2.5", "node2", "rack1"), ("10.244.3.5", "node3", "eu-b")]
    # three endpoints in rack1, one in eu-b (rack2's zone), half the nodes each: the last of
    # rack1's is hinted for eu-b
    assert [e["hints"]["forZones"][0]["name"] for e in eps] == ["rack1", "rack1", "eu-b",
                                                                 "eu-b"]


def test_kube_proxy_keeps_traffic_in_the_zone_and_falls_back_without_hints():
    sp = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 0, False, (
        Endpoint("10.244.1.5", 8080, "node1", "rack1"),
        Endpoint("10.244.2.5", 8080, "node2", "rack1"),
        Endpoint("10.244.3.5", 8080, "node3", "rack2")), topology_auto=True)
    assert [ep.ip for ep in plan(sp, "node3", "rack2").cluster] == ["10.244.3.5"]
    assert len(plan(sp, "node1", "rack1").cluster) == 2
    assert len(plan(sp, "node5", "rack9").cluster) == 3  # no endpoint hinted for its zone
    unhinted = dataclasses.replace(sp, endpoints=sp.endpoints[:2] + (
        Endpoint("10.244.3.5", 8080, "node3"),))
    assert len(plan(unhinted, "node3", "rack2").cluster) == 3  # one without a hint: all
    off = dataclasses.replace(sp, topology_auto=False)
    assert len(plan(off, "node3", "rack2").cluster) == 3
    t = iptables.ruleset([sp], "10.244.0.0/16", "node3", "192.168.2.11", "rack2")
    svc = t.nat[iptables.svc_chain(sp)]
    assert [r.split(" -j ")[-1] for r in svc[1:]] == [iptables.sep_chain(sp, sp.endpoints[2])]
