"""Topology parsing: good files give the expected plan, every bad input one clear error."""
import ipaddress
import textwrap
from pathlib import Path

import pytest

from testbed.errors import SpecError
from testbed.kubeproxy.modes import get_proxy_mode, proxy_mode_names
from testbed.model import spec as specmod
from testbed.modes import mode_names, option_readers

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"

GOOD = """
name: t1
nodes:
  - name: node1
    pods: 2
  - name: node2
    pods: 1
"""


def parse(text):
    return specmod.parse(textwrap.dedent(text), "topo.yaml", known_modes=mode_names())


def error_of(text):
    with pytest.raises(SpecError) as info:
        parse(text)
    return info.value


def test_defaults_and_addresses():
    spec = parse(GOOD)
    assert spec.pod_cidr == ipaddress.IPv4Network("10.244.0.0/16")
    assert spec.node_prefix == 24 and spec.mtu == 1500
    assert [r.name for r in spec.racks] == ["rack1"]
    assert [str(n.ip) for n in spec.nodes] == ["192.168.1.11/24", "192.168.1.12/24"]
    assert [p.name for p in spec.pods] == ["node1-pod1", "node1-pod2", "node2-pod1"]
    assert spec.pods[0].containers[0].command == ("sleep", "infinity")
    assert not spec.has_router


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_topologies_are_valid(path):
    spec = specmod.load(path, known_modes=mode_names(), options=option_readers())
    assert spec.nodes and all(n.rack in {r.name for r in spec.racks} for n in spec.nodes)
    assert set(spec.options) == set(option_readers())  # every mode's, defaults where absent


def test_two_racks_have_a_router_and_separate_subnets():
    spec = specmod.load(TOPOLOGIES / "two-racks.yaml", known_modes=mode_names(),
                        options=option_readers())
    assert spec.has_router
    assert [str(r.router_ip) for r in spec.racks] == ["192.168.1.1/24", "192.168.2.1/24"]
    assert str(spec.node("node3").ip) == "192.168.2.11/24"


def test_explicit_pods_with_containers_and_labels():
    spec = parse("""
        nodes:
          - name: n1
            pods:
              - name: web
                namespace: shop
                labels: {app: web}
                containers:
                  - {name: server, command: "python3 -m http.server"}
                  - {name: side, command: [sleep, "5"]}
    """)
    pod = spec.pods[0]
    assert (pod.name, pod.namespace, pod.node, pod.labels) == ("web", "shop", "n1", {"app": "web"})
    assert pod.containers[0].command == ("sh", "-c", "python3 -m http.server")
    assert pod.containers[1].command == ("sleep", "5")


@pytest.mark.parametrize("text, field, value, words", [
    ("bogus: 1\nnodes: [{name: a}]", "bogus", 1, "unknown key"),
    ("nodes: [{name: a, colour: red}]", "nodes[0].colour", "red", "unknown key"),
    ("podCIDR: 10.244.0.1/16\nnodes: [{name: a}]", "podCIDR", "10.244.0.1/16", "host bits"),
    ("podCIDR: banana\nnodes: [{name: a}]", "podCIDR", "banana", "not a CIDR"),
    ("racks: [{name: r1, subnet: 10.244.5.0/24}]\nnodes: [{name: a}]",
     "racks[0].subnet", "10.244.5.0/24", "overlaps podCIDR"),
    ("racks: [{name: r1, subnet: 10.1.0.0/16}, {name: r2, subnet: 10.1.2.0/24}]\n"
     "nodes: [{name: a, rack: r1}]", "racks[1].subnet", "10.1.2.0/24", "overlaps rack r1"),
    ("podCIDR: 10.244.0.0/23\nnodes: [{name: a}, {name: b}, {name: c}]",
     "podCIDR", "10.244.0.0/23", "too few for 3 nodes"),
    ("nodes: [{name: a}, {name: a}]", "nodes[1].name", "a", "duplicate name"),
    ("nodes: [{name: a, pods: [{name: a}]}]", "nodes[0].pods[0].name", "a", "duplicate name"),
    ("nodes: [{name: node-with-long-name}]", "nodes[0].name", "node-with-long-name",
     "Linux interface name"),
    ("racks: [{name: a-very-long-rack-x}]\nnodes: [{name: a}]", "racks[0].name",
     "a-very-long-rack-x", "Linux interface name"),
    ("nodes: [{name: Node_1}]", "nodes[0].name", "Node_1", "lower-case"),
    ("mode: vxlna\nnodes: [{name: a}]", "mode", "vxlna", "unknown mode"),
    ("mtu: 100\nnodes: [{name: a}]", "mtu", 100, "from 1280 to 9000"),
    ("nodes: [{name: a, rack: nowhere}]", "nodes[0].rack", "nowhere", "no such rack"),
    ("nodes: []", "nodes", [], "non-empty list"),
    ("nodes: [{name: a, pods: -1}]", "nodes[0].pods", -1, "pod count"),
    ("nodes: [{name: a, pods: [{name: p, labels: {x: 1}}]}]", "nodes[0].pods[0].labels",
     {"x": 1}, "strings"),
])
def test_bad_input_names_file_field_and_value(text, field, value, words):
    err = error_of(text)
    assert (err.path, err.field, err.value) == ("topo.yaml", field, value)
    assert words in str(err)
    assert str(err).startswith(f"topo.yaml: {field}")


def test_malformed_yaml_names_the_line():
    err = error_of("nodes:\n  - name: a\n    pods: [1, 2\n")
    assert err.field.startswith("line ") and "malformed YAML" in str(err)


def test_a_key_given_twice_is_refused():
    err = error_of("nodes: [{name: a}]\nnodes: [{name: b}]\n")
    assert "given twice" in str(err) and err.field == "line 2"


def test_unreadable_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError) as info:
        specmod.load(tmp_path / "missing.yaml")
    assert "cannot read" in str(info.value)


def test_rack_subnet_too_small_for_its_nodes():
    err = error_of("racks: [{name: r, subnet: 192.168.9.0/28}]\n"
                   "nodes: [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}]")
    assert err.field == "nodes[4].rack" and "no address left" in str(err)


def test_bandwidth_and_delay_apply_to_racks_unless_a_rack_overrides():
    spec = parse("bandwidth: 100\ndelay: 2\n"
                 "racks: [{name: r1}, {name: r2, bandwidth: 10, delay: 0}]\n"
                 "nodes: [{name: a, rack: r1}, {name: b, rack: r2}]")
    assert [(r.bandwidth, r.delay) for r in spec.racks] == [(100.0, 2.0), (10.0, None)]


def test_a_key_no_mode_reads_is_unknown_and_a_read_key_is_the_readers():
    err = error_of("udp: {offload: true}\nnodes: [{name: a}]")
    assert err.field == "udp" and "unknown key" in str(err)

    def read_toy(section):
        section.fields({"colour"})
        return (section.given, section.choice("colour", ("red", "blue")), len(section.spec.nodes))

    toy = {"toy": read_toy}
    spec = specmod.parse("nodes: [{name: a}, {name: b}]", "t.yaml", options=toy)
    assert spec.options == {"toy": (False, "red", 2)}
    spec = specmod.parse("toy: {colour: blue}\nnodes: [{name: a}]", "t.yaml", options=toy)
    assert spec.options["toy"] == (True, "blue", 1)
    for text, field, value in (("toy: {colour: green}", "toy.colour", "green"),
                               ("toy: {color: red}", "toy.color", "red"),
                               ("toy: [1]", "toy", [1])):
        with pytest.raises(SpecError) as info:
            specmod.parse(text + "\nnodes: [{name: a}]", "t.yaml", options=toy)
        assert (info.value.path, info.value.field, info.value.value) == ("t.yaml", field, value)


def test_underlay_is_linux_bridges_unless_ovs_is_asked_for():
    assert parse("nodes: [{name: a}]").underlay == "linux"
    assert parse("underlay: ovs\nnodes: [{name: a}]").underlay == "ovs"
    err = error_of("underlay: openflow\nnodes: [{name: a}]")
    assert (err.field, err.value) == ("underlay", "openflow") and "linux, ovs" in str(err)


def test_an_external_client_takes_the_first_racks_last_address_and_its_name():
    spec = parse("externalClient: true\nracks: [{name: r1, subnet: 10.1.0.0/24}]\n"
                 "nodes: [{name: a, rack: r1}]")
    assert spec.external_client and str(spec.external_ip) == "10.1.0.254/24"
    err = error_of("externalClient: true\nnodes: [{name: external}]")
    assert "duplicate name" in str(err)
    assert error_of("externalClient: yes please\nnodes: [{name: a}]").field == "externalClient"


def test_kube_proxy_mode_is_kube_proxys_default_unless_the_topology_chooses():
    def proxy_mode(text):
        return specmod.parse(text + "\nnodes: [{name: a}]", "t.yaml",
                             proxy_modes=proxy_mode_names()).proxy_mode

    assert proxy_mode("") == ""  # as kube-proxy's own configuration: its default mode
    assert get_proxy_mode(proxy_mode("")).name == "iptables"
    assert proxy_mode("kubeProxy: {mode: nftables}") == "nftables"
    assert proxy_mode("kubeProxy: {mode: userspace}") == "userspace"
    with pytest.raises(SpecError) as info:
        proxy_mode("kubeProxy: {mode: kernelspace}")
    assert (info.value.field, info.value.value) == ("kubeProxy.mode", "kernelspace")
    assert "must be one of iptables, ipvs, nftables, userspace" in str(info.value)


def test_a_racks_zone_is_its_name_unless_the_topology_says():
    spec = parse("racks: [{name: r1}, {name: r2, zone: eu-west-1b}]\n"
                 "nodes: [{name: a, rack: r1}, {name: b, rack: r2}]")
    assert [r.zone for r in spec.racks] == ["r1", "eu-west-1b"]
    err = error_of("racks: [{name: r1, zone: 'not a zone'}]\nnodes: [{name: a}]")
    assert err.field == "racks[0].zone" and "label value" in str(err)


def test_load_balancer_addresses_sit_below_the_external_client_and_above_the_nodes():
    spec = parse("racks: [{name: r1, subnet: 10.1.0.0/24}]\nnodes: [{name: a, rack: r1}]")
    pool = [str(ip) for ip in spec.load_balancer_pool]
    assert pool == [f"10.1.0.{n}" for n in range(240, 254)]
    small = parse("racks: [{name: r1, subnet: 10.1.0.0/28}]\n"
                  "nodes: [{name: a, rack: r1}, {name: b, rack: r1}]")
    # .11 and .12 are the nodes, .14 the external client's, .15 broadcast
    assert [str(ip) for ip in small.load_balancer_pool] == ["10.1.0.13"]
    assert spec.load_balancer_pool_v6 == ()  # no IPv6 in an IPv4 cluster
    dual = parse("ipFamily: dual\nracks: [{name: r1, subnet: 10.1.0.0/24}]\n"
                 "nodes: [{name: a, rack: r1}]")
    # the IPv6 pool: the same digits in the rack's IPv6 subnet, after the IPv4 pool
    assert [str(ip) for ip in dual.load_balancer_pool_v6][:2] == ["fd00:10:1::240",
                                                                  "fd00:10:1::241"]
    assert len(dual.load_balancer_addresses) == 2 * len(dual.load_balancer_pool)


def test_network_policy_enforcement_is_the_modes_unless_the_topology_says():
    assert parse("nodes: [{name: a}]").policy_enforce is None
    assert parse("networkPolicy: {enforce: true}\nnodes: [{name: a}]").policy_enforce is True
    err = error_of("networkPolicy: {enforce: sometimes}\nnodes: [{name: a}]")
    assert (err.field, err.value) == ("networkPolicy.enforce", "sometimes")


def test_pod_names_are_scoped_to_their_namespace():
    spec = parse("racks: [{name: r1}]\nnodes:\n  - name: n1\n    rack: r1\n    pods:\n"
                 "      - {name: a, namespace: x}\n      - {name: a, namespace: y}\n")
    assert [p.key for p in spec.pods] == ["x/a", "y/a"]
    with pytest.raises(SpecError, match="duplicate name"):
        parse("racks: [{name: r1}]\nnodes:\n  - name: n1\n    rack: r1\n    pods:\n"
              "      - {name: a, namespace: x}\n      - {name: a, namespace: x}\n")
    with pytest.raises(SpecError, match=r"nodes\[1\].name = 'a': duplicate name \(already a "
                                        r"pod's\)"):
        parse("racks: [{name: r1}]\nnodes:\n  - name: n1\n    rack: r1\n    pods: [{name: a}]\n"
              "  - {name: a, rack: r1}\n")


def test_dual_stack_defaults_as_kind_and_node_addresses_that_read_alike():
    spec = parse("ipFamily: dual\nracks: [{name: r1}, {name: r2}]\n"
                 "nodes: [{name: a, rack: r1}, {name: b, rack: r2}]\nexternalClient: true")
    assert spec.families == ("IPv4", "IPv6")
    assert [str(c) for c in spec.pod_cidrs] == ["10.244.0.0/16", "fd00:10:244::/56"]
    assert spec.node_prefix_v6 == 64
    assert [str(r.subnet_v6) for r in spec.racks] == ["fd00:192:168:1::/64",
                                                      "fd00:192:168:2::/64"]
    assert [str(r.router_ip_v6) for r in spec.racks] == ["fd00:192:168:1::1/64",
                                                         "fd00:192:168:2::1/64"]
    assert [tuple(map(str, n.addresses)) for n in spec.nodes] == [
        ("192.168.1.11/24", "fd00:192:168:1::11/64"), ("192.168.2.11/24", "fd00:192:168:2::11/64")]
    assert str(spec.external_ip_v6) == "fd00:192:168:1::254/64"
    plain = parse(GOOD)
    assert plain.families == ("IPv4",) and plain.pod_cidr_v6 is None
    assert all(n.ip_v6 is None for n in plain.nodes) and plain.racks[0].subnet_v6 is None


def test_dual_stack_cidrs_given_in_kinds_form_either_order():
    spec = parse("ipFamily: dual\npodCIDR: 'fd00:1::/56, 10.1.0.0/16'\nnodePrefixV6: 80\n"
                 "racks: [{name: r, subnet: '10.9.0.0/24,fd00:9::/64'}]\nnodes: [{name: a}]")
    assert (str(spec.pod_cidr), str(spec.pod_cidr_v6), spec.node_prefix_v6) == (
        "10.1.0.0/16", "fd00:1::/56", 80)
    assert str(spec.nodes[0].ip_v6) == "fd00:9::11/64"


def test_ip_family_override_adds_kinds_ipv6_range_to_a_file_written_for_ipv4():
    spec = specmod.load(TOPOLOGIES / "default.yaml", ip_family="dual")
    assert str(spec.pod_cidr_v6) == "fd00:10:244::/56" and spec.ip_family == "dual"
    with pytest.raises(SpecError, match="--ip-family = 'both': must be one of ipv4, ipv6, dual"):
        specmod.load(TOPOLOGIES / "default.yaml", ip_family="both")


@pytest.mark.parametrize("text, field, value, words", [
    ("ipFamily: dual\npodCIDR: 10.244.0.0/16\nnodes: [{name: a}]", "podCIDR", "10.244.0.0/16",
     "needs an IPv6 CIDR too: ipFamily is dual"),
    ("podCIDR: '10.244.0.0/16,fd00::/56'\nnodes: [{name: a}]", "podCIDR",
     "10.244.0.0/16,fd00::/56", "the cluster is IPv4 only"),
    ("ipFamily: dual\npodCIDR: '10.244.0.0/16,fd00::/56,fd01::/56'\nnodes: [{name: a}]",
     "podCIDR", "10.244.0.0/16,fd00::/56,fd01::/56", "two IPv6 CIDRs"),
    ("ipFamily: dual\npodCIDR: '10.244.0.0/16,fd00::/124'\nnodePrefixV6: 124\n"
     "nodes: [{name: a}, {name: b}]", "podCIDR", "fd00::/124",
     "holds 1 /124 node subnets, too few for 2 nodes"),
    ("ipFamily: dual\npodCIDR: '10.244.0.0/16,fd00:192:168::/48'\nnodes: [{name: a}]",
     "racks[0].subnet", "fd00:192:168:1::/64", "overlaps podCIDR fd00:192:168::/48"),
    ("ipFamily: dual\nracks: [{name: r, subnet: '10.0.0.0/24,fd00:1::/64'}, "
     "{name: s, subnet: '10.0.1.0/24,fd00:1::/64'}]\nnodes: [{name: a, rack: r}]",
     "racks[1].subnet", "fd00:1::/64", "overlaps rack r's subnet fd00:1::/64"),
    ("ipFamily: dual\nracks: [{name: r, subnet: '10.0.0.0/24,fd00:1::/120'}]\n"
     "nodes: [{name: a}]", "racks[0].subnet", "fd00:1::/120", "must be /112 or larger"),
    ("nodePrefixV6: 64\nnodes: [{name: a}]", "nodePrefixV6", 64, "the cluster has no IPv6"),
    ("ipFamily: dual\nnodePrefixV6: 30\nnodes: [{name: a}]", "nodePrefixV6", 30,
     "must be a number from 56 to 124"),
    ("ipFamily: ipv5\nnodes: [{name: a}]", "ipFamily", "ipv5",
     "must be one of ipv4, ipv6, dual"),
])
def test_dual_stack_bad_input_is_one_line_naming_field_and_value(text, field, value, words):
    err = error_of(text)
    assert (err.path, err.field, err.value) == ("topo.yaml", field, value)
    assert words in str(err) and "\n" not in str(err)
