"""A trace: resolve where a probe goes from and to, listen in every namespace it could cross,
send it, and read its path back from the captures and the kernel's own tables."""
import ipaddress
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.api.tables import find_pod
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.ingress import controller as ingress_controller
from testbed.kubeproxy.services import selected_pods
from testbed.manifests.families import IPV4, IPV6, family_of, join_host_port
from testbed.model.state import RunState
from testbed.modes import get_mode, mode_names, services_by
from testbed.policy.semantics import explain
from testbed.trace import evidence, pcap, probe
from testbed.trace.capture import SNAPLEN, Captures, tcpdump_argv
from testbed.underlay.names import in_host

SETTLE_S = 0.05  # after the probe: the last sightings reach their tcpdump's file


@dataclass
class Place:
    """A namespace the trace listens in: its label and how to run a command there."""
    label: str
    wrap: Callable[[list], list]
    kind: str = "pod"   # pod, node, router, host or rack (a rack only bridges)


@dataclass
class Target:
    """A side of the trace: its name, address, and the namespaces it stands for (a Service's:
    its endpoints')."""
    name: str
    ip: str
    places: list[Place] = field(default_factory=list)
    service: str | None = None
    ingress: str | None = None  # "ns/name" of the Ingress traced to


@dataclass
class Hop:
    number: int
    where: str
    interface: str
    direction: str
    packet: pcap.Packet
    outer: pcap.Packet | None = None
    tunnel: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Trace:
    source: Target
    destination: Target
    protocol: str
    port: int
    mode: str
    probe: dict = field(default_factory=dict)
    hops: list[Hop] = field(default_factory=list)
    reply: list[Hop] = field(default_factory=list)
    retransmissions: int = 0   # TCP sent the SYN again while the probe waited
    conntrack: dict = field(default_factory=dict)  # node -> its entry of the probe
    policy: list[str] = field(default_factory=list)  # how NetworkPolicy reads the connection
    ingress: list[str] = field(default_factory=list)  # how nginx routes the Ingress
    delivered: bool = False
    verdict: str = ""
    seconds: float = 0.0


def resolve(state: RunState, name: str, namespace: str = "default",
            family: str | None = None) -> Target:
    """A pod (NAME or NAMESPACE/NAME), node, router or host, a Service (svc/NAME or
    NAMESPACE/svc/NAME) or its ClusterIP, an Ingress (ing/NAME or NAMESPACE/ing/NAME: its
    controller's address), or an IPv4 or IPv6 address. A name stands for its address of
    `family` ("IPv4", "IPv6"; None: the cluster's primary one)."""
    family = family or state.families[0]
    if family not in state.families:
        raise TestbedError(f"cluster {state.name} has no {family} (its families: "
                           f"{', '.join(state.families)})")
    if name.startswith("ing/") or "/ing/" in name:
        ns, _, ing = name.rpartition("ing/")
        return _ingress(state, f"{ns.rstrip('/') or namespace}/{ing}")
    if name.startswith("svc/") or "/svc/" in name:
        ns, _, svc = name.rpartition("svc/")
        return _service(state, f"{ns.rstrip('/') or namespace}/{svc}", family=family)
    try:
        key, pod = find_pod(state, name, namespace)
    except TestbedError as err:
        pod_error = err
    else:
        return Target(key, _pod_address(key, pod, family), [_pod_place(key, pod)])
    for table in (state.nodes, state.routers, state.hosts):
        if name in table:
            return Target(name, _host_address(state, name, table[name], family),
                          [_host_place(state, name, table[name])])
    try:
        ip = str(ipaddress.ip_address(name))
    except ValueError:
        raise TestbedError(f"{name!r}: {pod_error}; no node, router or host of cluster "
                           f"{state.name} has that name, and it is no IP address (a Service: "
                           "svc/NAME)")
    for key, svc in state.services.items():
        if ip in svc.all_cluster_ips or ip in svc.all_load_balancer_ips:
            return _service(state, key, ip)
    for key, pod in state.pods.items():
        if ip in pod.addresses:
            return Target(key, ip, [_pod_place(key, pod)])
    for table in (state.nodes, state.routers, state.hosts):
        for host, record in table.items():
            if ip in (record.ip, getattr(record, "ip_v6", "")):
                return Target(host, ip, [_host_place(state, host, record)])
    return Target(ip, ip)


def _pod_address(key, pod, family):
    found = pod.address(family)
    if not found:
        raise TestbedError(f"pod {key} has no {family} address (its addresses: "
                           f"{', '.join(pod.ips) or 'none'})")
    return found


def _host_address(state, name, record, family):
    """A node's underlay address of the family; a router's or host's IPv4 one (their IPv6
    addresses are not recorded: trace to one by address)."""
    if family != IPV6:
        return record.ip
    if getattr(record, "ip_v6", ""):
        return record.ip_v6
    raise TestbedError(f"{name}: its IPv6 address is not recorded; give the address itself")


def _service(state, key, ip=None, family=None):
    if key not in state.services:
        raise TestbedError(f'services "{key.split("/", 1)[1]}" not found in namespace '
                           f'{key.split("/", 1)[0]}')
    svc = state.services[key]
    if not ip and family is not None and svc.cluster_ip not in ("", "None"):
        ip = next((a for a in svc.all_cluster_ips if family_of(a) == family), None)
        if ip is None:
            raise TestbedError(f"service {key} has no {family} ClusterIP (its ipFamilies: "
                               f"{', '.join(svc.ip_families or [IPV4])})")
    if not ip and svc.cluster_ip in ("", "None"):
        raise TestbedError(f"service {key} has no ClusterIP to trace to")
    ip = ip or svc.cluster_ip
    places = [_pod_place(pod_key, state.pods[pod_key]) for pod_key, _ in
              selected_pods(state, key, family_of(ip))]
    return Target(f"svc/{key}", ip, places, service=key)


def _ingress(state, key):
    if key not in state.ingresses:
        raise TestbedError(f'ingresses "{key.split("/", 1)[1]}" not found in namespace '
                           f'{key.split("/", 1)[0]}')
    controller = f"{ingress_controller.NAMESPACE}/{ingress_controller.NAME}"
    if controller not in state.services:
        raise TestbedError(f"Ingress {key}: no ingress controller runs in cluster {state.name}")
    svc = state.services[controller]
    target = _service(state, controller, svc.load_balancer_ip or svc.cluster_ip)
    target.name, target.ingress = f"ing/{key}", key
    return target


def _pod_place(key, pod):
    return Place(key.removeprefix("default/"), lambda argv: netns.in_pod(pod.netns, argv))


def _host_place(state, name, record):
    kind = "node" if name in state.nodes else "router" if name in state.routers else "host"
    return Place(name, lambda argv: in_host(state, name, record, argv), kind)


def places(state: RunState, *targets: Target) -> list[Place]:
    """Every namespace of the cluster but other pods': nodes, racks, routers, hosts and the
    targets' own."""
    out = {p.label: p for t in targets for p in t.places}
    for table in (state.nodes, state.routers, state.hosts):
        for name, record in table.items():
            out.setdefault(name, _host_place(state, name, record))
    pods = {pod.netns for pod in state.pods.values()}
    suffix = f".{state.name}"
    for name in state.owned.netns:
        label = name.removesuffix(suffix)
        if name not in pods and name.endswith(suffix) and label not in out:
            out[label] = Place(label, lambda argv, n=name: netns.in_pod(n, argv), "rack")
    return list(out.values())


def trace(state: RunState, source: Target, destination: Target, protocol: str,
          port: int) -> Trace:
    """Send one probe from `source` to `destination` and tell its path."""
    if not source.places:
        raise TestbedError(f"{source.name} is no pod, node or host of cluster {state.name}: "
                           "a trace starts in one of them")
    result = Trace(source, destination, protocol.upper(), port, state.mode or "none")
    if source.places[0].label in {p.label for p in destination.places} \
            and destination.service is None:
        result.delivered = True
        result.verdict = ("source and destination are the same pod: its containers share one "
                          "network namespace, so the packet stays on its loopback (lo) and "
                          "crosses no other device")
        return result
    started = time.monotonic()
    listen = places(state, source, destination)
    sport = probe.choose_port()
    with tempfile.TemporaryDirectory(prefix="testbed-trace-") as tmp, Captures() as captures:
        files = {}
        for place in listen:
            files[place.label] = os.path.join(tmp, f"{len(files)}.pcap")
            captures.start(place.label, tcpdump_argv(place.wrap, files[place.label],
                                                     snaplen=SNAPLEN))
        captures.wait_ready()
        policed = listen if state.network_policy.enforced else []
        drops_before = evidence.policy_drops(policed)
        proc = subprocess.run(source.places[0].wrap(
            probe.argv(protocol, destination.ip, port, sport)), capture_output=True, text=True,
            timeout=probe.TIMEOUT_S + 10)
        result.probe = probe.result(proc.stdout)
        if proc.returncode and "result" not in proc.stdout:
            result.probe["result"] = f"the probe failed: {proc.stderr.strip()[-200:]}"
        time.sleep(SETTLE_S)
        captures.stop()
        drops = evidence.rises(drops_before, evidence.policy_drops(policed))
        seen = [s for place in listen for s in pcap.sightings(files[place.label], place.label)]
    by_label = {p.label: p for p in listen}
    tuples = set()
    if protocol != "icmp":  # where a NAT took the probe: conntrack's entries, node by node
        entries = {label: evidence.conntrack_entries(by_label[label], protocol)
                   for label in state.nodes}
        tuples, result.conntrack = evidence.probe_tuples(entries, sport, destination.ip, port)
    forward, reply = _ours(seen, protocol.upper(), sport, tuples)
    forward, result.retransmissions = _first_transmission(forward)
    evidence.name_interfaces(forward + reply, by_label)
    result.hops = _hops(forward)
    result.reply = _hops(reply)
    services = services_by(state.mode, state.proxy_mode)  # kube-proxy, or a datapath's own
    evidence.annotate(result.hops, by_label, destination.ip, port, nat_by=services.nat_by)
    evidence.annotate_reply(result.reply, services.tracked_by)
    _datapath_notes(state, result.hops)
    if state.network_policy.enforced and result.hops and protocol != "icmp":
        src, (dst, dport) = result.hops[0].packet.flow.src, _endpoint(result)
        result.policy = explain(state, src, dst, dport, protocol.upper())[1]
    if destination.ingress:
        result.ingress = ingress_controller.routes(state, destination.ingress)
    arrived = {p.label for p in destination.places}
    last_in = [h for h in result.hops if h.direction == "in" and h.where in arrived]
    result.delivered = bool(last_in) or (not arrived and bool(result.reply))
    result.verdict = _verdict(result, last_in, drops, by_label)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _datapath_notes(state: RunState, hops: list[Hop]) -> None:
    """The mode's own datapath's account (OVS tables) where the probe entered each node."""
    mode = get_mode(state.mode) if state.mode in mode_names() else None
    if mode is None:
        return
    entered = set()
    for hop in hops:
        if hop.where not in state.nodes or hop.where in entered or hop.direction != "in":
            continue
        entered.add(hop.where)
        f = hop.packet.flow
        flow = {"protocol": f.protocol, "src": f.src, "dst": f.dst, "sport": f.sport,
                "dport": f.dport, "ttl": hop.packet.ttl}
        if hop.outer is not None:
            flow.update(outer_src=hop.outer.flow.src, outer_dst=hop.outer.flow.dst,
                        vni=hop.tunnel.get("vni", 0))
        steps = mode.datapath_trace(state, hop.where, hop.interface, flow)
        hop.notes += steps
        if steps:  # the mode's switch forwarded it here, not the node's routing table
            for later in hops[hop.number:]:
                if later.where == hop.where and later.outer is None:
                    later.notes = [n for n in later.notes
                                   if not n.startswith(("route: ", "neighbour: "))]


def _endpoint(result: Trace) -> tuple[str, int]:
    """Where the probe was headed last: its last hop's destination, or where conntrack says a
    NAT sent it (a packet dropped before it left the namespace that translated it)."""
    last = result.hops[-1].packet.flow
    if (last.dst, last.dport) != (result.destination.ip, result.port):
        return last.dst, last.dport
    for entry in result.conntrack.values():
        reply = entry["reply"]
        if (reply["src"], int(reply["sport"])) != (last.dst, last.dport):
            return reply["src"], int(reply["sport"])
    return last.dst, last.dport


def _ours(seen, protocol, sport, tuples=frozenset()):
    """The probe's sightings and its answer's, each in time order: by the probe's source port,
    or under a tuple a NAT gave it (`tuples`, from conntrack). Of a TCP connection only its
    opening: the SYN, and the SYN-ACK or reset that answered it."""
    forward, reply = [], []
    for s in sorted(seen, key=lambda s: s.time):
        flow = s.packet.flow
        as_tuple = (flow.src, flow.sport, flow.dst, flow.dport)
        backwards = (flow.dst, flow.dport, flow.src, flow.sport)
        if s.packet.quoted is not None:
            quoted = s.packet.quoted.flow
            if quoted.protocol == protocol and (quoted.sport == sport or (
                    quoted.src, quoted.sport, quoted.dst, quoted.dport) in tuples):
                reply.append(s)
        elif flow.protocol != protocol:
            continue
        elif protocol == "ICMP" and flow.sport == sport:
            (forward if s.packet.icmp_type == 8 else reply).append(s)
        elif (flow.sport == sport or as_tuple in tuples) and _opening(s.packet, forward=True):
            forward.append(s)
        elif (flow.dport == sport or backwards in tuples) and \
                _opening(s.packet, forward=False):
            reply.append(s)
    return forward, reply


def _first_transmission(forward):
    """The sightings of the probe's first transmission, and how many times it was sent
    again (a SYN nobody answered within a second): each retransmission leaves the source
    on the same interface again."""
    if not forward:
        return forward, 0
    first = forward[0]
    again = [i for i, s in enumerate(forward) if i and s.where == first.where and
             s.ifindex == first.ifindex and s.direction == first.direction]
    return (forward[:again[0]] if again else forward), len(again)


def _opening(packet, forward):
    """Is this a packet of the probe's first exchange (any UDP; TCP's SYN, SYN-ACK or RST)?"""
    if packet.flow.protocol != "TCP":
        return True
    flags = packet.info.split(",")
    if forward:
        return "SYN" in flags and "ACK" not in flags
    return "SYN" in flags or "RST" in flags


def _hops(sightings):
    return [Hop(i, s.where, s.interface, s.direction, s.packet, s.outer, s.tunnel)
            for i, s in enumerate(sightings, 1)]


def _verdict(result, last_in, drops, by_label):
    if result.delivered:
        hop = last_in[0] if last_in else None
        text = f"delivered to {hop.where} (hop {hop.number})" if hop else "answered"
        final = result.hops[-1].packet.flow if result.hops else None
        if final and final.dst != result.destination.ip:  # a ClusterIP, NodePort, LB: DNATed
            text += f", the endpoint {join_host_port(final.dst, final.dport)}"
        answer = result.reply[0].packet if result.reply else None
        if answer is not None and answer.info == "port unreachable":
            port = hop.packet.flow.dport if hop else result.port
            text += f"; nothing listens on {result.protocol} {port} there: it answered ICMP " \
                    "port unreachable"
        if result.probe.get("result") == "refused" and result.protocol == "TCP":
            port = hop.packet.flow.dport if hop else result.port
            text += f"; nothing listens on {result.protocol} {port} there: it answered with a " \
                    "reset (connection refused)"
        if result.reply:
            text += f"; the answer came back in {len(result.reply)} sightings"
        return text
    if not result.hops:
        return f"dropped before leaving {result.source.name}: no interface saw the probe " \
               f"(probe: {result.probe.get('result')})"
    last = result.hops[-1]
    text = f"dropped at hop {last.number}: last seen in {last.where} ({last.direction} " \
           f"{last.interface})"
    if result.retransmissions:
        text += f" (sent {result.retransmissions + 1} times: the first shown)"
    for where, chain, policies, comment in drops:
        named = ", ".join(policies) or "none"
        text += f"; NetworkPolicy drop in {where}: chain {chain} counted it ({comment}; " \
                f"policies selecting the pod: {named})"
    if not drops:
        text += "; " + evidence.route_text(by_label[last.where], last.packet.flow.dst)
    if result.reply and result.reply[0].packet.quoted is not None:
        first = result.reply[0]
        text += f"; {first.packet.flow.src} answered ICMP {first.packet.info}"
    return text
