"""Mode planning and rendering without root: the commands each mode issues, its CNI config."""
import ipaddress
from pathlib import Path

import pytest

from testbed.errors import TestbedError
from testbed.host.netns import Namespace
from testbed.model import spec as specmod
from testbed.modes import NodeContext, get_mode, mode_names, option_readers
from testbed.modes.flannel.base import flannel_rules

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


class RecordingNamespace:
    """Stands in for a node namespace: records every command instead of running it."""

    def __init__(self, mac):
        self.commands, self.mac = [], mac
        self.restored = []  # what iptables-restore was given

    def run(self, *argv, check=True, input=None):
        if argv[0] == "iptables-restore":
            self.restored.append(input)
        elif argv[1:] == ("-batch", "-"):  # one command per line
            self.commands += [f"{argv[0]} {line}" for line in input.splitlines()]
        else:
            self.commands.append(" ".join(str(a) for a in argv))
        return ""

    batch = Namespace.batch

    def ip_json(self, *args):
        return [{"address": self.mac}]


def nodes_for(spec, mode, tmp_path):
    leases = mode.plan(spec)
    nodes = []
    for i, n in enumerate(spec.nodes):
        ns = RecordingNamespace(f"02:00:00:00:00:0{i + 1}")
        nodes.append(NodeContext(n.name, n.rack, n.ip, ns, str(tmp_path / n.name), leases[n.name]))
    return nodes


def test_registry_lists_flannel_modes():
    assert {"vxlan", "host-gw"} <= set(mode_names())
    with pytest.raises(TestbedError, match="unknown CNI mode 'nope'"):
        get_mode("nope")


def test_vxlan_builds_flannel_objects(tmp_path):
    spec = specmod.load(TOPOLOGIES / "default.yaml")
    mode = get_mode("vxlan")
    a, b = nodes_for(spec, mode, tmp_path)
    for node in (a, b):
        mode.setup_node(spec, node)
    mode.add_peer(spec, a, b)
    assert a.ns.commands == [
        "ip link add flannel.1 type vxlan id 1 local 192.168.1.11 dev eth0 dstport 8472 nolearning",
        "ip link set flannel.1 mtu 1450",
        "ip addr add 10.244.0.0/32 dev flannel.1",
        "ip link set flannel.1 up",
        "ip route replace 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink",
        "ip neigh replace 10.244.1.0 lladdr 02:00:00:00:00:02 dev flannel.1 nud permanent",
        "bridge fdb replace 02:00:00:00:00:02 dev flannel.1 dst 192.168.1.12 self permanent",
    ]
    assert mode.pod_mtu(spec) == 1450
    env = open(a.facts["subnet_env"]).read()
    assert "FLANNEL_SUBNET=10.244.0.1/24" in env and "FLANNEL_MTU=1450" in env


def test_host_gw_routes_via_peer_node(tmp_path):
    spec = specmod.load(TOPOLOGIES / "default.yaml")
    mode = get_mode("host-gw")
    a, b = nodes_for(spec, mode, tmp_path)
    mode.setup_node(spec, a)
    mode.add_peer(spec, a, b)
    assert a.ns.commands == ["ip route replace 10.244.1.0/24 via 192.168.1.12 dev eth0"]
    assert mode.pod_mtu(spec) == 1500


def test_host_gw_refuses_several_racks_and_names_the_nodes():
    spec = specmod.load(TOPOLOGIES / "two-racks.yaml", options=option_readers())
    with pytest.raises(TestbedError) as info:
        get_mode("host-gw").check(spec)
    msg = str(info.value)
    assert "one L2 segment" in msg
    assert "rack1: node1, node2" in msg and "rack2: node3, node4" in msg
    get_mode("vxlan").check(spec)  # vxlan crosses racks


def test_flannel_cni_config_delegates_to_bridge_and_host_local(tmp_path):
    spec = specmod.load(TOPOLOGIES / "default.yaml")
    mode = get_mode("vxlan")
    node = nodes_for(spec, mode, tmp_path)[1]
    mode.setup_node(spec, node)
    conf = mode.network_config(spec, node)
    assert (conf["type"], conf["bridge"], conf["mtu"]) == ("bridge", "cni0", 1450)
    assert conf["isGateway"] and not conf["ipMasq"]
    assert conf["ipam"]["type"] == "host-local"
    assert conf["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    assert conf["ipam"]["routes"] == [{"dst": "10.244.0.0/16"}]
    assert conf["ipam"]["dataDir"].startswith(str(tmp_path / "node2"))
    assert ipaddress.IPv4Network(conf["ipam"]["ranges"][0][0]["subnet"]) == node.lease


def test_flannel_modes_refuse_more_pods_than_a_lease_holds():
    from testbed.model.spec import parse
    spec = parse("nodePrefix: 28\nnodes: [{name: a, pods: 14}]", "t.yaml")
    for name in ("vxlan", "host-gw"):
        with pytest.raises(TestbedError, match="node a has 14 pods but its /28 lease holds 13"):
            get_mode(name).check(spec)
    get_mode("vxlan").check(parse("nodePrefix: 28\nnodes: [{name: a, pods: 13}]", "t.yaml"))


def test_udp_mode_builds_flannel0_and_queues_peers_until_its_forwarder_runs(tmp_path):
    spec = specmod.load(TOPOLOGIES / "default.yaml")
    mode = get_mode("udp")
    a, b = nodes_for(spec, mode, tmp_path)
    mode.setup_node(spec, a)
    mode.add_peer(spec, a, b)  # no forwarder yet: remembered, sent when it starts
    assert a.ns.commands == [
        "ip tuntap add dev flannel0 mode tun",
        "ip link set flannel0 mtu 1472",
        "ip addr add 10.244.0.0/32 dev flannel0",
        "ip link set flannel0 up",
        "ip route replace 10.244.0.0/16 dev flannel0",
    ]
    assert a.facts["peers"] == {"10.244.1.0/24": "192.168.1.12"}
    assert mode.pod_mtu(spec) == 1472 and "tun" in mode.requires
    mode.remove_peer(spec, a, b)
    assert a.facts["peers"] == {}


def test_network_policy_is_refused_where_the_datapath_bypasses_the_packet_filter():
    import dataclasses

    from testbed.lifecycle.preflight import check_mode
    spec = dataclasses.replace(specmod.load(TOPOLOGIES / "default.yaml"), policy_enforce=True)
    caps = {name: True for name in get_mode("openflow").requires}
    with pytest.raises(TestbedError) as info:
        check_mode("openflow", spec, caps)
    assert "networkPolicy.enforce: mode openflow cannot enforce NetworkPolicy" in str(info.value)
    check_mode("vxlan", spec, {name: True for name in get_mode("vxlan").requires})
    assert get_mode("bgp").policy_by_default and not get_mode("vxlan").policy_by_default


def test_udp_runs_flannels_loop_and_udp_gso_the_bundles():
    plain, bundled = get_mode("udp"), get_mode("udp-gso")
    default = specmod.load(TOPOLOGIES / "default.yaml")
    assert not plain.bundles(default) and bundled.bundles(default)
    assert "one packet per system call" in plain.describe_datapath(default, {})
    assert "TSO/GSO/GRO bundles" in bundled.describe_datapath(default, {})
    asked = specmod.parse("udp: {offload: true}\nnodes: [{name: a}]", "t.yaml",
                          options=option_readers())
    assert plain.bundles(asked)  # a topology may ask `udp` for the bundles too
    assert bundled.pod_mtu(default) == plain.pod_mtu(default) == 1472  # one wire


def test_flannel_writes_flanneld_s_masquerade_and_forward_rules_unless_told_not_to(tmp_path):
    spec = specmod.load(TOPOLOGIES / "default.yaml")
    mode = get_mode("vxlan")
    a, _b = nodes_for(spec, mode, tmp_path)
    mode.setup_node(spec, a)
    (rules,) = a.ns.restored
    assert rules == flannel_rules("10.244.0.0/16", "10.244.0.0/24")
    lines = rules.splitlines()
    masq = '-m comment --comment "flanneld masq"'
    assert lines[lines.index("*nat") + 2:lines.index("*nat") + 5] == [
        f"-A POSTROUTING {masq} -j FLANNEL-POSTRTG",
        f"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {masq} -j RETURN",
        f"-A FLANNEL-POSTRTG -s 10.244.0.0/24 -d 10.244.0.0/16 {masq} -j RETURN"]
    assert f"-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 {masq} -j MASQUERADE " \
        "--random-fully" in lines
    assert '-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT' \
        in lines
    assert "FLANNEL_IPMASQ=true" in open(a.facts["subnet_env"]).read()
    off = specmod.parse((TOPOLOGIES / "default.yaml").read_text() + "flannel: {ipMasq: false}\n",
                        "t.yaml", options=option_readers())
    c, _d = nodes_for(off, mode, tmp_path / "off")
    mode.setup_node(off, c)
    assert c.ns.restored == [] and "FLANNEL_IPMASQ=false" in open(c.facts["subnet_env"]).read()
    # then, as flannel's CNI plugin does, the bridge plugin masquerades instead
    assert mode.network_config(off, c)["ipMasq"] and not mode.network_config(spec, a)["ipMasq"]
