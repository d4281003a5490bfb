import ipaddress

from testbed import ipam, spec as specmod


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
