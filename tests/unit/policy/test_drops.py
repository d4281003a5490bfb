"""The drops each node remembers, read from `nft -j list set` and tied to the pod a chain
guards, its peer and the policies isolating it."""
import json

from testbed.manifests import kinds
from testbed.policy import drops, nftables
from tests.unit.states import state_from

LISTING = json.dumps({"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {
    "family": "ip", "name": "drops-ingress", "table": "calico", "timeout": 3600,
    "elem": [{"elem": {"val": {"concat": ["10.244.0.0", "10.244.0.66", "tcp", 8080]},
                       "expires": 3590, "counter": {"packets": 3, "bytes": 180}}},
             {"elem": {"val": {"concat": ["192.168.1.99", "10.244.0.66", "icmp", 2048]},
                       "expires": 3000, "counter": {"packets": 1, "bytes": 84}}}]}}]})

STATE = {
    "nodes": {"node1": {"ip": "192.168.1.11"}, "node2": {"ip": "192.168.1.12"}},
    "pods": {"default/node1-pod1": {"ip": "10.244.0.0"},
             "shop/web-1": {"ip": "10.244.0.66", "node": "node2", "labels": {"app": "web"}}},
}
ONLY_FRONTENDS = kinds.NetworkPolicy(
    "only-frontends", "shop", kinds.LabelSelector((("app", "web"),)), ("Ingress",),
    (kinds.PolicyRule((kinds.PolicyPeer(kinds.LabelSelector((("role", "frontend"),))),)),))


def test_elements_are_read_with_their_count_and_last_drop():
    found = drops.parse(LISTING, now=10_000.0)
    assert found[0] == {"src": "10.244.0.0", "dst": "10.244.0.66", "protocol": "TCP",
                        "port": 8080, "packets": 3, "last": 9_990.0}
    assert found[1]["protocol"] == "ICMP" and found[1]["port"] is None  # no port for ICMP
    assert drops.parse(json.dumps({"nftables": [{"set": {"name": "x"}}]}), 0) == []


def test_a_drop_names_the_pod_its_peer_and_the_policies_isolating_it():
    state = state_from(STATE, policies=[ONLY_FRONTENDS])
    found = drops.attribute(state, "node2", "Ingress", drops.parse(LISTING, now=10_000.0))
    assert [(d.pod, d.peer, d.policies, d.packets) for d in found] == [
        ("shop/web-1", "default/node1-pod1", ["shop/only-frontends"], 3),
        ("shop/web-1", "192.168.1.99", ["shop/only-frontends"], 1)]  # newest first
    egress = drops.attribute(state, "node1", "Egress", drops.parse(LISTING, now=10_000.0))
    assert egress[0].pod == "default/node1-pod1" and egress[0].policies == []


def test_the_drop_rule_remembers_logs_counts_and_drops():
    rule = nftables.drop_rule("cali-tw-cali5", "Ingress", "shop/web-1")
    assert rule == ("update @drops-ingress { ip saddr . ip daddr . meta l4proto . th dport "
                    'timeout 3600s } log prefix "cali-tw-cali5" group 1 counter drop comment '
                    '"shop/web-1: no policy allows this ingress"')
    assert 'log prefix "cali-fw-cali5" group 2' in nftables.drop_rule("cali-fw-cali5",
                                                                      "Egress", "x/y")
