"""Dual-stack in the flannel modes, without root: the IPv6 objects each backend adds beside the
IPv4 ones, the CNI config with a range and route per family, and the modes that refuse it."""
import dataclasses

import pytest

from testbed.errors import TestbedError
from testbed.lifecycle.preflight import check_proxy_mode
from testbed.model import spec as specmod
from testbed.modes import NodeContext, get_mode

from .test_modes import TOPOLOGIES, RecordingNamespace, option_readers


def dual_nodes(spec, mode, tmp_path):
    leases, leases_v6 = mode.plan(spec), mode.plan_v6(spec)
    return [NodeContext(n.name, n.rack, n.ip, RecordingNamespace(f"02:00:00:00:00:0{i + 1}"),
                        str(tmp_path / n.name), leases[n.name], ip_v6=n.ip_v6,
                        lease_v6=leases_v6[n.name])
            for i, n in enumerate(spec.nodes)]


def dual(topology="default.yaml"):
    return specmod.load(TOPOLOGIES / topology, ip_family="dual")


def test_vxlan_adds_flannel_v6_1_and_its_peer_objects(tmp_path):
    spec, mode = dual(), get_mode("vxlan")
    a, b = dual_nodes(spec, mode, tmp_path)
    for node in (a, b):
        mode.setup_node(spec, node)
    mode.add_peer(spec, a, b)
    v6 = [c for c in a.ns.commands if "flannel-v6.1" in c]
    assert v6 == [
        "ip link add flannel-v6.1 type vxlan id 1 local fd00:192:168:1::11 dev eth0 "
        "dstport 8472 nolearning",
        "ip link set flannel-v6.1 mtu 1430",
        "ip addr add fd00:10:244::/128 dev flannel-v6.1",
        "ip link set flannel-v6.1 up",
        "ip route replace fd00:10:244:1::/64 via fd00:10:244:1:: dev flannel-v6.1 onlink",
        "ip neigh replace fd00:10:244:1:: lladdr 02:00:00:00:00:02 dev flannel-v6.1 "
        "nud permanent",
        "bridge fdb replace 02:00:00:00:00:02 dev flannel-v6.1 dst fd00:192:168:1::12 self "
        "permanent",
    ]
    # flannel.1 is as in an IPv4 cluster
    assert "ip link set flannel.1 mtu 1450" in a.ns.commands
    env = open(a.facts["subnet_env"]).read().splitlines()
    assert env[2:4] == ["FLANNEL_IPV6_NETWORK=fd00:10:244::/56",
                        "FLANNEL_IPV6_SUBNET=fd00:10:244::1/64"]
    assert mode.describe_node(a)["lease"] == "10.244.0.0/24,fd00:10:244::/64"


def test_host_gw_routes_each_family_via_the_peer_s_address_of_that_family(tmp_path):
    spec, mode = dual(), get_mode("host-gw")
    a, b = dual_nodes(spec, mode, tmp_path)
    mode.add_peer(spec, a, b)
    assert a.ns.commands == [
        "ip route replace 10.244.1.0/24 via 192.168.1.12 dev eth0",
        "ip route replace fd00:10:244:1::/64 via fd00:192:168:1::12 dev eth0"]
    mode.remove_peer(spec, a, b)
    assert a.ns.commands[-1] == "ip route del fd00:10:244:1::/64 via fd00:192:168:1::12 dev eth0"


def test_flannel_cni_config_has_a_range_and_a_route_per_family(tmp_path):
    spec, mode = dual(), get_mode("vxlan")
    node = dual_nodes(spec, mode, tmp_path)[1]
    mode.setup_node(spec, node)
    ipam = mode.network_config(spec, node)["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]]
    assert ipam["routes"] == [{"dst": "10.244.0.0/16"}, {"dst": "fd00:10:244::/56"}]


def test_flanneld_rules_in_ip6tables_spare_ipv6_multicast(tmp_path):
    spec, mode = dual(), get_mode("vxlan")
    node = dual_nodes(spec, mode, tmp_path)[0]
    restored = []
    node.ns.run = lambda *argv, check=True, input=None: restored.append((argv[0], input)) or ""
    mode.setup_node(spec, node)
    tools = [tool for tool, _ in restored if tool.endswith("-restore")]
    assert tools == ["iptables-restore", "ip6tables-restore"]
    v6 = dict(restored)["ip6tables-restore"]
    assert "-A FLANNEL-POSTRTG -s fd00:10:244::/56 ! -d ff00::/8" in v6
    assert "-A FLANNEL-POSTRTG -s fd00:10:244::/64 -d fd00:10:244::/56" in v6
    assert "224.0.0.0/4" not in v6


def test_udp_refuses_dual_stack_naming_flannel_and_the_others_accept_it():
    spec = dual()
    with pytest.raises(TestbedError, match="flannel's udp backend carries IPv4 only"):
        get_mode("udp").check_families(spec)
    for name in ("vxlan", "host-gw", "bgp", "openflow", "ebpf"):
        get_mode(name).check_families(spec)


def test_ipv6_leases_are_too_few_for_the_pods_refused():
    spec = specmod.parse("ipFamily: dual\npodCIDR: 10.244.0.0/16,fd00:10:244::/120\n"
                         "nodePrefixV6: 124\nnodes: [{name: a, pods: 15}]", "t.yaml")
    with pytest.raises(TestbedError, match="node a has 15 pods but its /124 lease holds 14 "
                       r"pod addresses; use larger leases \(a smaller nodePrefixV6\)"):
        get_mode("vxlan").check(spec)


def test_bird_config_gains_ipv6_protocols_and_sessions_over_ipv6():
    from testbed.modes.bgp.bird import node_config
    text = node_config("192.168.1.11", ["10.244.0.0/26", "fd00:10:244::/122"], 64512,
                       [("node_b", "192.168.1.12", 64512, False),
                        ("node_b_v6", "fd00:192:168:1::12", 64512, False)],
                       "/tmp/bird.log", node_ip_v6="fd00:192:168:1::11")
    assert "router id 192.168.1.11;" in text  # the router id stays IPv4
    assert "protocol kernel kernel6 {\n  ipv6 {" in text
    assert "protocol static blocks6 {\n  ipv6;\n  route fd00:10:244::/122 blackhole;" in text
    assert "if net ~ [ fd00:10:244::/122 ]" in text
    v6 = text[text.index("protocol bgp node_b_v6"):]
    assert "local fd00:192:168:1::11 as 64512;" in v6
    assert "neighbor fd00:192:168:1::12 as 64512;" in v6
    assert "ipv6 { import all; export filter own_blocks6;" in v6
    v4 = text[text.index("protocol bgp node_b "):text.index("protocol bgp node_b_v6")]
    assert "ipv4 { import all; export filter own_blocks;" in v4
    plain = node_config("192.168.1.11", ["10.244.0.0/26"], 64512, [], "/tmp/bird.log")
    assert "ipv6" not in plain


def test_bgp_plans_122_blocks_beside_the_26s():
    spec, mode = dual(), get_mode("bgp")
    assert {n: str(b) for n, b in mode.plan_v6(spec).items()} == {
        "node1": "fd00:10:244::/122", "node2": "fd00:10:244::40/122"}
    assert mode._own_blocks("node2") == ["10.244.0.64/26", "fd00:10:244::40/122"]


def test_calico_ipam_gives_an_address_of_each_family(tmp_path):
    from testbed.modes.bgp import ipam_plugin
    conf = ipam_plugin.load_config(
        '{"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "testbed-calico-blocks", '
        f'"dataDir": "{tmp_path}", "blocks": ["fd00:10:244::/122", "10.244.0.0/26"]}}}}')
    result = ipam_plugin.add(conf, {"id": "c1"})
    assert result["ips"] == [{"address": "10.244.0.0/32"}, {"address": "fd00:10:244::/128"}]
    assert ipam_plugin.add(conf, {"id": "c2"})["ips"][1] == {"address": "fd00:10:244::1/128"}
    ipam_plugin.delete(conf, {"id": "c1"})
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "lock") == [
        "10.244.0.1", "fd00:10:244::1"]


def test_a_kube_proxy_mode_without_ipv6_is_refused_in_a_dual_stack_cluster():
    spec = dataclasses.replace(dual(), proxy_mode="userspace")
    with pytest.raises(TestbedError, match="ipFamily dual: kube-proxy mode userspace serves no "
                       r"IPv6 Services here yet; kubeProxy: \{mode: iptables, ipvs or nftables\}"):
        check_proxy_mode(spec, {})


def ipv6_only(topology="default.yaml"):
    return specmod.load(TOPOLOGIES / topology, ip_family="ipv6", options=option_readers())


def test_ipv6_only_flannel_has_no_ipv4_lease_device_keys_or_rules(tmp_path):
    spec, mode = ipv6_only(), get_mode("vxlan")
    leases, leases_v6 = mode.plan_leases(spec)
    assert leases == {} and str(leases_v6["node2"]) == "fd00:10:244:1::/64"
    a, b = (NodeContext(n.name, n.rack, n.ip, RecordingNamespace(f"02:00:00:00:00:0{i + 1}"),
                        str(tmp_path / n.name), None, ip_v6=n.ip_v6,
                        lease_v6=leases_v6[n.name]) for i, n in enumerate(spec.nodes))
    restored = []
    record = a.ns.run
    a.ns.run = lambda *argv, check=True, input=None: (
        restored.append(argv[0]) if argv[0].endswith("-restore")
        else record(*argv, check=check, input=input))
    for node in (a, b):
        mode.setup_node(spec, node)
    mode.add_peer(spec, a, b)
    assert not [c for c in a.ns.commands if "flannel.1" in c]  # EnableIPv4: false
    assert "ip link set flannel-v6.1 mtu 1430" in a.ns.commands
    assert restored == ["ip6tables-restore"]
    assert open(a.facts["subnet_env"]).read().splitlines() == [
        "FLANNEL_IPV6_NETWORK=fd00:10:244::/56", "FLANNEL_IPV6_SUBNET=fd00:10:244::1/64",
        "FLANNEL_MTU=1450", "FLANNEL_IPMASQ=true"]
    ipam = mode.network_config(spec, a)["ipam"]
    assert ipam["ranges"] == [[{"subnet": "fd00:10:244::/64"}]]
    assert ipam["routes"] == [{"dst": "fd00:10:244::/56"}]
    assert get_mode("host-gw").routes(b) == [(b.lease_v6, b.ip_v6)]


def test_ipv6_only_bgp_has_an_ipv6_pool_and_peers_over_ipv6_alone():
    spec, mode = ipv6_only("two-racks.yaml"), get_mode("bgp")
    leases, leases_v6 = mode.plan_leases(spec)
    assert leases == {} and all(str(b).endswith("/122") for b in leases_v6.values())
    assert mode._own_blocks("node1") == ["fd00:10:244::/122"]
    nodes = {n.name: NodeContext(n.name, n.rack, n.ip, RecordingNamespace("02:00:00:00:00:01"),
                                 "/nonexistent", ip_v6=n.ip_v6) for n in spec.nodes}
    peers = mode._peers(spec, nodes["node1"], nodes)
    assert [(name, str(ip)) for name, ip, _as, _rr in peers] == [
        ("node_node2_v6", "fd00:192:168:1::12"), ("rack_router_v6", "fd00:192:168:1::1")]


def test_the_ipv6_only_modes_and_those_refusing_it():
    spec = ipv6_only()
    for name in ("vxlan", "host-gw", "bgp"):
        get_mode(name).check_families(spec)
    for name in ("udp", "openflow", "ebpf"):
        with pytest.raises(TestbedError, match=f"ipFamily ipv6: mode {name} cannot build it"):
            get_mode(name).check_families(spec)
