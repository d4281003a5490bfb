"""The ebpf mode without root: map layouts, the service maps it renders (kube-proxy's overall
set of Services), the order of map writes, its CNI plugin and its refusals."""
import hashlib
import io
import ipaddress
import json
import struct

import pytest

from testbed.cni import skeleton
from testbed.errors import TestbedError
from testbed.kubeproxy.types import Endpoint
from testbed.model import spec as specmod
from testbed.modes import get_mode, option_readers
from testbed.modes.ebpf import cilium_plugin, maps, services
from testbed.modes.ebpf.maps import MapWrite

from ..kubeproxy.overall import NODE, NODE_IP, SERVICES


def fronts_by_address():
    return {(f.address, f.port): f for f in services.frontends(SERVICES, NODE, NODE_IP)}


def test_layouts_match_the_c_structs_and_decode_back():
    key = maps.service_key("10.96.0.10", 53, "udp", slot=2)
    assert len(key) == 12 and key[4:6] == b"\x00\x35"  # the port in network order
    assert len(maps.service_value(7, 3, 4, 1)) == 12
    assert maps.decode_service(key, maps.service_value(7, 0, 4, 1)) == {
        "address": "10.96.0.10", "port": 53, "protocol": "udp", "slot": 2, "backend_id": 7,
        "count": 0, "rev_nat": 4, "flags": 1}
    assert maps.decode_backend(maps.backend_key(9), maps.backend_value("10.244.1.5", 8080,
                                                                       "tcp")) == {
        "id": 9, "ip": "10.244.1.5", "port": 8080, "protocol": "tcp"}
    assert maps.decode_ipcache(maps.ipcache_key("10.244.1.0/24"),
                               maps.ipcache_value(6, "192.168.1.12")) == {
        "prefix": "10.244.1.0/24", "identity": 6, "tunnel_endpoint": "192.168.1.12"}
    ep = maps.endpoint_value(7, 256, "aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02")
    assert len(ep) == 20
    assert maps.decode_endpoint(maps.endpoint_key("10.244.0.2"), ep)["lxc_mac"] == \
        "aa:bb:cc:dd:ee:02"
    # the node's IPv6 addresses follow its IPv4 ones and devices (zero without IPv6)
    config = maps.node_config("192.168.1.11", "10.244.0.1", 2, 3, 4)
    assert len(config) == 24 + 32 and config[24:] == bytes(32)
    config6 = maps.node_config("192.168.1.11", "10.244.0.1", 2, 3, 4, "fd00::11", "fd00:1::1")
    assert config6[24:40] == ipaddress.IPv6Address("fd00::11").packed
    # cilium_metrics: per-CPU counters summed, the key naming program and reason
    per_cpu = [struct.pack("<QQ", 2, 200), struct.pack("<QQ", 3, 300)]
    assert maps.decode_metrics(struct.pack("<I", 1 * 16 + 8), per_cpu) == {
        "program": "cil_from_netdev", "reason": "drop: no service backend", "packets": 5,
        "bytes": 500}


def test_frontends_follow_kube_proxys_view_of_traffic_policies():
    fronts = fronts_by_address()
    # a ClusterIP picks from every endpoint
    assert [str(e) for e in fronts[("172.30.0.41", 80)].backends] == ["10.180.0.1:80"]
    # externalTrafficPolicy Local, its only endpoint elsewhere: external frontends drop,
    # the ClusterIP still reaches it
    assert fronts[(NODE_IP, 3001)].backends == ()
    assert fronts[("1.2.3.4", 80)].backends == () and fronts[("1.2.3.4", 80)].external
    assert fronts[("192.168.99.22", 80)].backends == ()
    assert [str(e) for e in fronts[("172.30.0.42", 80)].backends] == ["10.180.0.2:80"]
    # NodePort and external IP: external, from every endpoint
    assert fronts[(NODE_IP, 3003)].external
    assert len(fronts[("192.168.99.33", 80)].backends) == 2
    # ClientIP affinity is carried as a flag
    assert fronts[("5.6.7.8", 80)].affinity and not fronts[("172.30.0.41", 80)].affinity
    # no endpoints at all: refused (ICMP, as kube-proxy's REJECT); none here under policy
    # Local: dropped (kube-proxy's DROP)
    assert fronts[("172.30.0.46", 80)].backends == () and fronts[("172.30.0.46", 80)].reject
    assert not fronts[(NODE_IP, 3001)].reject
    # loadBalancerSourceRanges hold for the load-balancer address only
    assert fronts[("5.6.7.8", 80)].source_ranges == ("203.0.113.0/25",)
    assert fronts[(NODE_IP, 3002)].source_ranges == ()


def test_rendered_maps_share_backends_and_keep_ids_across_syncs():
    ids, rev = services.Allocator(), services.Allocator()
    first = services.render(services.frontends(SERVICES, NODE, NODE_IP), ids, rev)
    # 10.180.0.3:80 backs two Services: one backend entry
    addresses = [maps.decode_backend(k, v)["ip"] for k, v in first[maps.BACKENDS].items()]
    assert sorted(addresses) == sorted(set(addresses))
    ns3 = ids.given[("10.180.0.3", 80, "tcp")]
    master = first[maps.SERVICES][maps.service_key(NODE_IP, 3003, "tcp")]
    assert maps.decode_service(maps.service_key(NODE_IP, 3003, "tcp"), master)["count"] == 1
    slot = first[maps.SERVICES][maps.service_key(NODE_IP, 3003, "tcp", 1)]
    assert maps.decode_service(maps.service_key(NODE_IP, 3003, "tcp", 1), slot)[
        "backend_id"] == ns3
    # without ns1, the other backends keep their IDs (a flow's CT entry names its backend)
    second = services.render(services.frontends(SERVICES[1:], NODE, NODE_IP), ids, rev)
    assert ids.given[("10.180.0.3", 80, "tcp")] == ns3
    assert ("10.180.0.1", 80, "tcp") not in ids.given
    writes = services.changes(first, second)
    removed = {w.key for w in writes if w.value is None}
    assert maps.service_key("172.30.0.41", 80, "tcp") in removed
    assert maps.service_key("172.30.0.41", 80, "tcp", 1) in removed
    assert services.changes(second, second) == []
    # the source range is keyed by its frontend's reverse-NAT index, matched whole
    index = rev.given[("5.6.7.8", 80, "tcp")]
    key = maps.source_range_key(index, "203.0.113.0/25")
    assert key in second[maps.SOURCE_RANGES]
    assert struct.unpack_from("<IH", key) == (32 + 25, index)
    master = maps.decode_service(maps.service_key("5.6.7.8", 80, "tcp"),
                                 second[maps.SERVICES][maps.service_key("5.6.7.8", 80, "tcp")])
    assert master["flags"] == maps.SVC_EXTERNAL | maps.SVC_AFFINITY | maps.SVC_SOURCE_RANGE


def test_writes_never_show_a_frontend_more_backends_than_its_slots():
    ids, rev = services.Allocator(), services.Allocator()
    one = services.render([services.Frontend("10.96.0.5", 80, "tcp", False, False,
                                             (Endpoint("10.244.0.2", 80),))], ids, rev)
    three = services.render([services.Frontend("10.96.0.5", 80, "tcp", False, False,
                                               tuple(Endpoint(f"10.244.{n}.2", 80)
                                                     for n in range(3)))], ids, rev)
    master = maps.service_key("10.96.0.5", 80, "tcp")
    growing = [w.key for w in services.changes(one, three) if w.map == maps.SERVICES]
    assert growing.index(master) == len(growing) - 1  # slots first, then the count
    shrinking = services.changes(three, one)
    keys = [w.key for w in shrinking if w.map == maps.SERVICES]
    assert keys[0] == master and all(w.value is None for w in shrinking[1:]
                                     if w.map == maps.SERVICES)


def test_map_writes_are_bpftool_batch_lines():
    write = MapWrite(maps.REVERSE_NAT, maps.rev_nat_key(3), maps.rev_nat_value("10.96.0.2", 80))
    assert write.line("/sys/fs/bpf/testbed/c/node1/maps") == (
        "map update pinned /sys/fs/bpf/testbed/c/node1/maps/cilium_lb4_reverse_nat "
        "key hex 03 00 value hex 0a 60 00 02 00 50 00 00")
    # Cilium's endpoint_key: the address in a 16-byte union, family 1 (IPv4), key, cluster
    assert MapWrite(maps.ENDPOINTS, maps.endpoint_key("10.244.0.2")).line("/m") == \
        "map delete pinned /m/cilium_lxc key hex 0a f4 00 02" + " 00" * 12 + " 01 00 00 00"


def test_ipv6_keys_and_values_as_cilium_lays_them_out():
    key = maps.endpoint_key("fd00:10:244::2")
    assert len(key) == 20 and key[16] == 2  # ENDPOINT_KEY_IPV6
    ep = maps.endpoint_value(7, 256, "aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02")
    assert maps.decode_endpoint(key, ep)["ip"] == "fd00:10:244::2"
    # ipcache: 32 bits of cluster ID, pad and family always matched, then the prefix
    key = maps.ipcache_key("fd00:10:244:1::/64")
    assert len(key) == 24 and struct.unpack_from("<I", key)[0] == 32 + 64 and key[7] == 2
    assert maps.decode_ipcache(key, maps.ipcache_value(2, "192.168.1.12")) == {
        "prefix": "fd00:10:244:1::/64", "identity": 2, "tunnel_endpoint": "192.168.1.12"}
    v4 = maps.ipcache_key("10.244.1.0/24")
    assert struct.unpack_from("<I", v4)[0] == 32 + 24 and v4[7] == 1 and v4[8:12] == \
        bytes([10, 244, 1, 0])
    # the lb6 maps: the same fields with a 16-byte address
    service = maps.service_key("fd00:10:96::a", 53, "udp", slot=1)
    assert len(service) == 24
    assert maps.decode_service(service, maps.service_value(3, 0, 2, 0))["address"] == \
        "fd00:10:96::a"
    backend = maps.backend_value("fd00:10:244::5", 8080, "tcp")
    assert len(backend) == 20 and maps.decode_backend(maps.backend_key(3), backend) == {
        "id": 3, "ip": "fd00:10:244::5", "port": 8080, "protocol": "tcp"}
    ct = maps.ct_key("fd00:10:244::2", "fd00:10:96::a", 1000, 53, "udp", maps.CT_REPLY)
    assert len(ct) == 40 and maps.ct_family(ct) == 6 and maps.ct_direction(ct) == 1
    assert maps.SERVICE_MAPS["IPv6"].conntrack == "cilium_ct6_global"


def test_the_plugin_names_host_veths_as_cilium_does():
    name = cilium_plugin.host_veth_name("0123456789abcdef")
    assert name == "lxc" + hashlib.sha256(b"0123456789abcdef").hexdigest()[:12]
    assert len(name) == 15


def test_the_plugin_refuses_a_configuration_without_router():
    conf = {"cniVersion": "1.0.0", "name": "cilium", "type": "testbed-cilium",
            "ipam": {"type": "host-local"}}
    out = io.StringIO()
    code = cilium_plugin.main(io.StringIO(json.dumps(conf)), out,
                              {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "x",
                               "CNI_IFNAME": "eth0", "CNI_NETNS": "/nonexistent"})
    err = json.loads(out.getvalue())
    assert code == 1 and err["code"] == skeleton.INVALID_CONFIG and "router" in err["msg"]


TWO_RACKS = """
racks: [{name: rack1, subnet: 192.168.1.0/24}, {name: rack2, subnet: 192.168.2.0/24}]
nodes: [{name: node1, rack: rack1}, {name: node2, rack: rack2}]
"""


def load_topology_text(text):
    return specmod.parse(text, options=option_readers())


def test_native_routing_across_racks_is_refused_and_tunnel_is_taken():
    mode = get_mode("ebpf")
    spec = load_topology_text(TWO_RACKS)
    with pytest.raises(TestbedError, match=r"ebpf: \{routing: tunnel\}"):
        mode.check(spec)
    tunnel = load_topology_text(TWO_RACKS + "ebpf: {routing: tunnel}\n")
    mode.check(tunnel)
    assert mode.pod_mtu(tunnel) == tunnel.mtu - 50 and mode.pod_mtu(spec) == spec.mtu
    assert "cilium_vxlan" in mode.describe_datapath(tunnel, {})


def test_a_bad_routing_value_names_the_field():
    with pytest.raises(TestbedError, match=r"ebpf.routing.*vxlan.*native, tunnel"):
        load_topology_text(TWO_RACKS + "ebpf: {routing: vxlan}\n")


def test_identities_follow_label_sets_not_pods():
    mode = get_mode("ebpf")
    web = mode.identity("shop", {"app": "web"})
    assert web >= maps.FIRST_IDENTITY
    assert mode.identity("shop", {"app": "web"}) == web
    assert mode.identity("other", {"app": "web"}) != web
    assert mode.identity("shop", {"app": "db"}) not in (web,)


def test_network_policy_enforcement_is_refused_with_the_reason():
    import dataclasses
    from pathlib import Path

    from testbed.lifecycle.preflight import check_mode
    topologies = Path(__file__).resolve().parents[3] / "topologies"
    spec = dataclasses.replace(specmod.load(topologies / "default.yaml"), policy_enforce=True)
    caps = {name: True for name in get_mode("ebpf").requires}
    with pytest.raises(TestbedError, match="mode ebpf cannot enforce NetworkPolicy: the ebpf "
                                           "mode does not enforce NetworkPolicy yet"):
        check_mode("ebpf", spec, caps)
    missing = {**caps, "bpf_redirect_peer": False}
    with pytest.raises(TestbedError, match="mode ebpf needs bpf_redirect_peer"):
        check_mode("ebpf", dataclasses.replace(spec, policy_enforce=None), missing)


def test_released_ids_are_given_again_smallest_first():
    ids = services.Allocator()
    assert [ids.get(k) for k in "abcd"] == [1, 2, 3, 4]
    ids.keep_only({"a", "d"})
    assert [ids.get(k) for k in "xyz"] == [2, 3, 5]
    assert ids.get("a") == 1  # a kept key keeps its ID
