import ipaddress

from testbed.model import ipam
from testbed.model import spec as specmod


def test_leases_follow_kube_controller_manager_order():
    spec = specmod.parse("podCIDR: 10.50.0.0/16\nnodePrefix: 25\n"
                         "nodes: [{name: a}, {name: b}, {name: c}]")
    leases = ipam.node_leases(spec)
    assert [str(leases[n]) for n in "abc"] == ["10.50.0.0/25", "10.50.0.128/25", "10.50.1.0/25"]


def test_subnet_env_matches_flannel_and_round_trips(tmp_path):
    lease = ipaddress.IPv4Network("10.244.3.0/24")
    text = ipam.render_subnet_env(ipaddress.IPv4Network("10.244.0.0/16"), lease, 1450)
    assert text.splitlines() == ["FLANNEL_NETWORK=10.244.0.0/16", "FLANNEL_SUBNET=10.244.3.1/24",
                                 "FLANNEL_MTU=1450", "FLANNEL_IPMASQ=false"]
    path = ipam.write_subnet_env(tmp_path / "run" / "flannel", "10.244.0.0/16", lease, 1450)
    assert ipam.parse_subnet_env(open(path).read())["FLANNEL_SUBNET"] == "10.244.3.1/24"


def test_calico_blocks_are_26s_in_order_and_grow_with_the_pods():
    spec = specmod.parse("nodes: [{name: a, pods: 2}, {name: b, pods: 65}, {name: c}]")
    blocks = ipam.calico_blocks(spec)
    assert [str(b) for b in blocks["a"]] == ["10.244.0.0/26"]
    assert [str(b) for b in blocks["b"]] == ["10.244.0.64/26", "10.244.0.128/26"]
    assert [str(b) for b in blocks["c"]] == ["10.244.0.192/26"]  # a node without pods too


def test_calico_blocks_run_out_with_a_clear_error():
    import pytest
    spec = specmod.parse("podCIDR: 10.9.0.0/25\nnodePrefix: 25\nnodes: [{name: a, pods: 130}]")
    with pytest.raises(ValueError, match="too few /26 blocks for the pods of node a"):
        ipam.calico_blocks(spec)


def test_ipv6_leases_are_64s_in_order_and_only_with_ipv6():
    spec = specmod.parse("ipFamily: dual\nnodes: [{name: a}, {name: b}]")
    assert {n: str(lease) for n, lease in ipam.node_leases_v6(spec).items()} == {
        "a": "fd00:10:244::/64", "b": "fd00:10:244:1::/64"}
    assert ipam.node_leases_v6(specmod.parse("nodes: [{name: a}]")) == {}


def test_subnet_env_with_ipv6_as_flannel_writes_it():
    text = ipam.render_subnet_env(
        ipaddress.IPv4Network("10.244.0.0/16"), ipaddress.IPv4Network("10.244.1.0/24"), 1450,
        True, ipaddress.IPv6Network("fd00:10:244::/56"),
        ipaddress.IPv6Network("fd00:10:244:1::/64"))
    assert text.splitlines() == [
        "FLANNEL_NETWORK=10.244.0.0/16", "FLANNEL_SUBNET=10.244.1.1/24",
        "FLANNEL_IPV6_NETWORK=fd00:10:244::/56", "FLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64",
        "FLANNEL_MTU=1450", "FLANNEL_IPMASQ=true"]
