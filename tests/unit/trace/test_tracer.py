"""The trace's own logic: what SRC and DST name, which sightings are the probe's opening
exchange, what the verdict says, how it is printed; the probe program itself."""
import json
import os
import socket
import subprocess

import pytest

from testbed.errors import TestbedError
from testbed.trace import pcap, probe, render, tracer
from tests.unit.states import state_from

STATE = {
    "nodes": {"node1": {"ip": "192.168.1.11"}, "node2": {"ip": "192.168.1.12"}},
    "pods": {"default/node1-pod1": {"ip": "10.244.0.2", "labels": {"app": "a"}},
             "shop/web-1": {"ip": "10.244.1.5", "node": "node2", "labels": {"app": "web"}}},
    "services": {"shop/web": {"cluster_ip": "10.96.0.2", "selector": {"app": "web"}}},
}


def test_targets_are_pods_nodes_services_and_addresses():
    state = state_from(STATE)
    assert tracer.resolve(state, "node1-pod1").ip == "10.244.0.2"
    assert tracer.resolve(state, "node2").places[0].kind == "node"
    web = tracer.resolve(state, "shop/svc/web")
    assert (web.ip, web.service, [p.label for p in web.places]) == \
        ("10.96.0.2", "shop/web", ["shop/web-1"])
    assert tracer.resolve(state, "10.96.0.2").service == "shop/web"  # by its ClusterIP
    assert tracer.resolve(state, "10.244.1.5").name == "shop/web-1"
    assert tracer.resolve(state, "8.8.8.8").places == []  # an address, nothing to listen in


def test_unknown_names_say_what_they_are_not():
    state = state_from(STATE)
    with pytest.raises(TestbedError, match="'node9-pod1'.*no node, router or host of cluster t"):
        tracer.resolve(state, "node9-pod1")
    with pytest.raises(TestbedError, match='services "nope" not found in namespace shop'):
        tracer.resolve(state, "shop/svc/nope")


def test_a_trace_inside_one_pod_stays_on_its_loopback():
    state = state_from(STATE)
    pod = tracer.resolve(state, "node1-pod1")
    result = tracer.trace(state, pod, pod, "tcp", 80)
    assert result.delivered and "loopback (lo)" in result.verdict and result.hops == []


def sighting(t, where, flow, info="", icmp=None, quoted=None):
    packet = pcap.Packet(pcap.Flow(*flow), 64, info, icmp, quoted)
    return pcap.Sighting(t, where, 1, "out", packet)


def test_only_the_opening_exchange_of_a_connection_is_followed():
    out = ("TCP", "10.244.0.2", 40000, "10.244.1.5", 80)
    back = ("TCP", "10.244.1.5", 80, "10.244.0.2", 40000)
    seen = [sighting(3, "b", back, "SYN,ACK"), sighting(1, "a", out, "SYN"),
            sighting(4, "a", out, "ACK"), sighting(5, "b", back, "ACK,FIN"),
            sighting(2, "b", ("TCP", "10.244.0.3", 41000, "10.244.1.5", 80), "SYN")]
    forward, reply = tracer._ours(seen, "TCP", 40000)
    assert [(s.time, s.packet.info) for s in forward] == [(1, "SYN")]
    assert [(s.time, s.packet.info) for s in reply] == [(3, "SYN,ACK")]


def test_an_icmp_error_about_the_probe_counts_as_its_answer():
    quoted = pcap.Packet(pcap.Flow("UDP", "10.244.0.2", 40000, "10.244.1.5", 9), 63, "")
    error = sighting(2, "b", ("ICMP", "10.244.1.5", 0, "10.244.0.2", 0), "port unreachable",
                     3, quoted)
    probe_out = sighting(1, "a", ("UDP", "10.244.0.2", 40000, "10.244.1.5", 9))
    forward, reply = tracer._ours([probe_out, error], "UDP", 40000)
    assert len(forward) == 1 and reply == [error]


def test_the_text_names_every_hop_and_the_json_round_trips():
    state = state_from(STATE)
    result = tracer.Trace(tracer.resolve(state, "node1-pod1"), tracer.resolve(state, "node2"),
                          "TCP", 80, "vxlan", {"result": "connected", "seconds": 0.001})
    flow = ("TCP", "10.244.0.2", 40000, "192.168.1.12", 80)
    result.hops = tracer._hops([sighting(1, "node1-pod1", flow, "SYN")])
    result.hops[0].interface = "eth0"
    result.hops[0].notes = ["route: default via 10.244.0.1 dev eth0"]
    result.delivered, result.verdict = True, "delivered to node2 (hop 1)"
    text = render.text(result)
    assert "   1  node1-pod1  out eth0            10.244.0.2:40000 > 192.168.1.12:80 TCP " \
           "SYN ttl 64" in text
    assert "route: default via 10.244.0.1 dev eth0" in text
    assert text.endswith("DELIVERED: delivered to node2 (hop 1)")
    data = json.loads(render.as_json(result))
    assert data["hops"][0]["packet"]["flow"]["sport"] == 40000
    assert data["destination"] == {"name": "node2", "ip": "192.168.1.12", "service": None}


def run_probe(protocol, port):
    proc = subprocess.run(probe.argv(protocol, "127.0.0.1", port, probe.choose_port(), 0.5),
                          capture_output=True, text=True, timeout=10)
    return probe.result(proc.stdout)["result"]


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_probe_tells_refused_answered_and_silent_apart():
    assert run_probe("tcp", closed_port()) == "refused"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert run_probe("tcp", server.getsockname()[1]) == "connected"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))  # bound, never answering
        assert run_probe("udp", server.getsockname()[1]) == "no answer"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
        gone.bind(("127.0.0.1", 0))
        closed = gone.getsockname()[1]
    assert run_probe("udp", closed) == "refused"  # the port unreachable, seen by the socket
    if os.geteuid() == 0:  # a raw ICMP socket needs root
        assert run_probe("icmp", 0) == "answered"
    assert probe.result("noise\n") == {"result": "the probe printed nothing", "seconds": 0.0}


def test_a_retransmitted_syn_is_shown_once_and_counted():
    out = ("TCP", "10.244.0.2", 40000, "10.244.1.5", 80)
    seen = [sighting(t, where, out, "SYN") for t, where in
            ((1, "pod"), (2, "node1"), (3, "node2"), (4, "pod"), (5, "node1"), (6, "node2"))]
    first, again = tracer._first_transmission(seen)
    assert [s.time for s in first] == [1, 2, 3] and again == 1


def test_a_dual_stack_target_is_its_address_of_the_family_asked():
    state = state_from(STATE)
    state.ip_family = "dual"
    pod = state.pods["default/node1-pod1"]
    pod.ips = [pod.ip, "fd00:10:244::2"]
    assert tracer.resolve(state, "node1-pod1", family="IPv6").ip == "fd00:10:244::2"
    assert tracer.resolve(state, "fd00:10:244::2").name == "default/node1-pod1"
    with pytest.raises(TestbedError, match="shop/web-1 has no IPv6 address"):
        tracer.resolve(state, "shop/web-1", family="IPv6")
    with pytest.raises(TestbedError, match="service shop/web has no IPv6 ClusterIP"):
        tracer.resolve(state, "shop/svc/web", family="IPv6")
    state.ip_family = "ipv4"
    with pytest.raises(TestbedError, match="cluster t has no IPv6"):
        tracer.resolve(state, "node1-pod1", family="IPv6")
