"""The openflow mode's pieces without root: the CNI plugin's checks, the userspace-datapath
port commands, and the flows the podnet app plans for a node."""
import io
import json

import pytest

from testbed.modes.openflow import ovs_plugin
from testbed.underlay import ovs

CONF = {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "testbed-ovs", "mtu": 1450,
        "bridge": "br-int", "ovsdb": "unix:/nonexistent/db.sock", "gateway": "10.244.0.1",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]]}}
ENV = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/p",
       "CNI_ARGS": "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web", "CNI_PATH": "/nonexistent"}


def run(conf, **env):
    out = io.StringIO()
    code = ovs_plugin.main(io.StringIO(json.dumps(conf)), out, env)
    return code, json.loads(out.getvalue()) if out.getvalue() else None


def test_host_port_name_is_short_enough_and_stable():
    name = ovs_plugin.host_port_name("a-long-namespace", "a-long-pod-name")
    assert name.startswith("of") and len(name) == 13
    assert name == ovs_plugin.host_port_name("a-long-namespace", "a-long-pod-name")
    assert name != ovs_plugin.host_port_name("a-long-namespace", "another-pod")


@pytest.mark.parametrize("missing", ["bridge", "ovsdb", "gateway", "ipam"])
def test_a_config_without_a_required_key_is_refused(missing):
    conf = {k: v for k, v in CONF.items() if k != missing}
    code, err = run(conf, CNI_COMMAND="ADD", **ENV)
    assert code == 1 and err["code"] == 7 and missing in err["msg"]


def test_an_ipam_plugin_not_on_cni_path_is_a_clear_error():
    code, err = run(CONF, CNI_COMMAND="ADD", **ENV)
    assert code == 1 and err["code"] == 7 and "'host-local' not found on CNI_PATH" in err["msg"]


def test_userspace_ports_lose_checksum_offload_and_the_kernels_copy():
    argvs = ovs.userspace_port_argvs("of0123456789a")
    assert ["ethtool", "-K", "of0123456789a", "tx", "off"] in argvs
    chain = next(a for a in argvs if a[:3] == ["nft", "add", "chain"])
    assert chain[3:5] == ["netdev", ovs.NFT_TABLE] and chain[5] == "in-of0123456789a"
    assert 'hook ingress device "of0123456789a"' in chain[6] and "policy drop" in chain[6]


# --- the podnet app's flows, recorded from a fake datapath ------------------------------------
class Recorder:
    """Stands in for an os-ken Datapath: keeps the messages the app sends."""

    def __init__(self, dpid):
        from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser
        self.id, self.ofproto, self.ofproto_parser = dpid, ofproto_v1_3, ofproto_v1_3_parser
        self.sent = []

    def send_msg(self, msg):
        self.sent.append(msg)


def flows_of(dp):
    out = []
    for msg in dp.sent:
        match = dict(msg.match.items())
        actions = [a for inst in msg.instructions for a in getattr(inst, "actions", [])]
        gotos = [inst.table_id for inst in msg.instructions if hasattr(inst, "table_id")]
        out.append((msg.table_id, msg.priority, match, actions, gotos))
    return out


@pytest.fixture
def app():
    pytest.importorskip("os_ken")
    from controllers.podnet import PodNetwork
    net = PodNetwork()
    node1, node2 = Recorder(1), Recorder(2)
    for dp in (node1, node2):
        net.datapaths[dp.id] = dp
        net.port_numbers[dp.id] = {"tun0": 1, "gw0": 2, "ofpod1": 3}
    net.add_node({"name": "node1", "dpid": "0000000000000001", "ip": "192.168.1.11",
                  "lease": "10.244.0.0/24", "gateway_ip": "10.244.0.1",
                  "gateway_mac": "02:00:00:00:00:01"})
    net.add_node({"name": "node2", "dpid": "0000000000000002", "ip": "192.168.1.12",
                  "lease": "10.244.1.0/24", "gateway_ip": "10.244.1.1",
                  "gateway_mac": "02:00:00:00:00:02"})
    net.add_pod({"node": "node1", "name": "web", "ip": "10.244.0.2",
                 "mac": "0a:00:00:00:00:02", "port": "ofpod1"})
    return net, node1, node2


def test_remote_pod_subnets_go_into_the_tunnel_to_their_node(app):
    _, node1, _ = app
    tunnel = [f for f in flows_of(node1) if f[2].get("ipv4_dst") == ("10.244.1.0", "255.255.255.0")]
    assert tunnel, "no flow for node2's pods"
    table, _, _, actions, _ = tunnel[-1]
    fields = {a.key: a.value for a in actions if hasattr(a, "key")}
    assert table == 20 and fields["tun_ipv4_dst"] == "192.168.1.12"
    assert actions[-1].port == 1  # tun0
    assert any(type(a).__name__ == "OFPActionDecNwTtl" for a in actions)


def test_a_local_pod_is_delivered_by_ip_answered_by_arp_and_cannot_spoof(app):
    _, node1, node2 = app
    flows = flows_of(node1)
    deliver = [f for f in flows if f[0] == 20 and f[2].get("ipv4_dst") == "10.244.0.2"]
    assert deliver and deliver[-1][3][-1].port == 3
    arp = [f for f in flows if f[0] == 10 and f[2].get("arp_tpa") == "10.244.0.2"]
    assert arp and {a.key: a.value for a in arp[-1][3] if hasattr(a, "key")}["arp_sha"] == \
        "0a:00:00:00:00:02"
    source_checks = [f[2] for f in flows if f[0] == 0 and f[2].get("in_port") == 3]
    assert {"in_port": 3, "eth_type": 0x0800, "ipv4_src": "10.244.0.2"} in source_checks
    assert {"in_port": 3, "eth_type": 0x0806, "arp_spa": "10.244.0.2"} in source_checks
    # the pod lives on node1 only
    assert not [f for f in flows_of(node2) if f[2].get("ipv4_dst") == "10.244.0.2"]


def test_forgetting_a_pod_deletes_its_flows(app):
    net, node1, _ = app
    node1.sent.clear()
    net.forget_pod({"node": "node1", "name": "web"})
    deletes = [m for m in node1.sent if m.command == node1.ofproto.OFPFC_DELETE]
    matches = [dict(m.match.items()) for m in deletes]
    assert {"eth_type": 0x0800, "ipv4_dst": "10.244.0.2"} in matches
    assert {"in_port": 3, "eth_type": 0x0800, "ipv4_src": "10.244.0.2"} in matches


@pytest.fixture
def dual_app():
    pytest.importorskip("os_ken")
    from controllers.podnet import PodNetwork
    net = PodNetwork()
    node1, node2 = Recorder(1), Recorder(2)
    for index, dp in enumerate((node1, node2)):
        net.datapaths[dp.id] = dp
        net.port_numbers[dp.id] = {"tun0": 1, "gw0": 2, "ofpod1": 3}
        net.add_node({"name": f"node{index + 1}", "dpid": f"{index + 1:016x}",
                      "ip": f"192.168.1.1{index + 1}", "lease": f"10.244.{index}.0/24",
                      "gateway_ip": f"10.244.{index}.1", "gateway_mac": f"02:00:00:00:00:0{index}",
                      "ip_v6": f"fd00:192:168:1::1{index + 1}",
                      "lease_v6": f"fd00:10:244:{index}::/64",
                      "gateway_ip_v6": f"fd00:10:244:{index}::1"})
    net.add_pod({"node": "node1", "name": "web", "ip": "10.244.0.2", "ip_v6": "fd00:10:244::2",
                 "mac": "0a:00:00:00:00:02", "port": "ofpod1"})
    return net, node1, node2


def test_ipv6_pods_tunnel_to_the_peer_s_ipv6_address_and_switch_neighbour_discovery(dual_app):
    net, node1, _ = dual_app
    flows = flows_of(node1)
    peer_subnet = ("fd00:10:244:1::", "ffff:ffff:ffff:ffff::")
    tunnel = [f for f in flows if f[2].get("ipv6_dst") == peer_subnet]
    fields = {a.key: a.value for a in tunnel[-1][3] if hasattr(a, "key")}
    assert tunnel[-1][0] == 20 and fields["tun_ipv6_dst"] == "fd00:192:168:1::12"
    deliver = [f for f in flows if f[0] == 20 and f[2].get("ipv6_dst") == "fd00:10:244::2"]
    assert deliver and deliver[-1][3][-1].port == 3
    # neighbour discovery is the pods' and gw0's own, switched as by a learning switch
    normal = node1.ofproto.OFPP_NORMAL
    for kind in (135, 136):
        nd = [f for f in flows if f[0] == 10 and f[2].get("icmpv6_type") == kind]
        assert nd and nd[-1][3][0].port == normal
    # no ARP-style responder for IPv6 addresses; spoof guard by IPv6 source and link-local
    sources = [f[2] for f in flows if f[0] == 0]
    assert {"in_port": 3, "eth_type": 0x86dd, "ipv6_src": "fd00:10:244::2"} in sources
    assert {"eth_type": 0x86dd, "ipv6_src": ("fe80::", "ffc0::")} in sources
    node1.sent.clear()
    net.forget_pod({"node": "node1", "name": "web"})
    matches = [dict(m.match.items()) for m in node1.sent]
    assert {"eth_type": 0x86dd, "ipv6_dst": "fd00:10:244::2"} in matches


def test_the_openflow_mode_s_ipv6_config_routes_and_mtu(tmp_path):
    from testbed.model import spec as specmod
    from testbed.modes import NodeContext, get_mode

    from .test_modes import TOPOLOGIES, RecordingNamespace
    spec = specmod.load(TOPOLOGIES / "default.yaml", ip_family="dual")
    mode = get_mode("openflow")
    assert mode.pod_mtu(spec) == 1500 - 70  # Antrea's deduction once the node has IPv6
    assert mode.pod_mtu(specmod.load(TOPOLOGIES / "default.yaml")) == 1450
    leases, leases_v6 = mode.plan_leases(spec)
    a, b = (NodeContext(n.name, n.rack, n.ip, RecordingNamespace("02:00:00:00:00:01"),
                        str(tmp_path / n.name), leases[n.name], ip_v6=n.ip_v6,
                        lease_v6=leases_v6[n.name]) for n in spec.nodes)
    for node in (a, b):
        mode.setup_node(spec, node)
        node.facts["ovsdb"] = "unix:/nonexistent"
    mode._route_to(a, b)
    assert a.ns.commands[-2:] == [
        "ip route replace fd00:10:244:1::/64 via fd00:10:244:1::1 dev gw0 onlink",
        "ip neigh replace fd00:10:244:1::1 lladdr aa:bb:cc:dd:ee:ff dev gw0 nud permanent"]
    mode.dp_type = "system"
    ranges = mode.network_config(spec, a)["ipam"]["ranges"]
    assert ranges == [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}],
                      [{"subnet": "fd00:10:244::/64", "gateway": "fd00:10:244::1"}]]
