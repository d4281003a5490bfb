"""EndpointSlices as the EndpointSlice controller writes them, with its topology hints.

A Service's ready endpoints go into slices (one per set of target ports: pods that name their
ports differently get slices of their own), each endpoint with its nodeName and zone (its
node's topology.kubernetes.io/zone). With the annotation service.kubernetes.io/topology-mode:
Auto (or the older topology-aware-hints: auto) the controller also hints every endpoint for
a zone (hints.forZones), in proportion to each zone's share of the nodes (its share of
allocatable CPU, and every emulated node has the same): an endpoint is hinted for its own
zone, then whole endpoints move from zones above their share to zones below it, as the
controller's topologycache does. Where it gives no hints — one zone only, fewer endpoints
than zones, zone minimums (ceil(share·n/1.2), its overload threshold of 20 %) adding up to
more than there are — no endpoint is hinted and kube-proxy sends traffic everywhere. Which
endpoint moves is the last one of the giving zone, in kube-proxy's order (the controller
takes them in slice order). A dual-stack Service has slices of each address type (IPv4,
IPv6), as the controller writes a set per family of the Service.
"""
import hashlib
import math

from testbed.manifests.families import IPV4
from testbed.manifests.kinds import SAFE_ALPHABET
from testbed.model.state import RunState

OVERLOAD = 0.2  # the EndpointSlice controller's overloadThreshold
AUTO = ("Auto", "auto")  # the annotation values that turn topology-aware routing on


def zone_hints(endpoint_zones: list[str], node_zones: list[str]) -> list[str] | None:
    """The zone each endpoint is hinted for (in order), or None when the controller would
    give no hints (its getAllocations, getGivingAndReceivingZones, redistributeHints)."""
    zones = sorted(set(node_zones))
    n = len(endpoint_zones)
    if len(zones) < 2 or len(zones) > n:  # one zone only; fewer endpoints than zones
        return None
    desired, minimum = {}, {}
    for zone in zones:
        wanted = node_zones.count(zone) / len(node_zones) * n
        minimum[zone] = math.ceil(wanted / (1 + OVERLOAD))
        desired[zone] = max(wanted, minimum[zone])
    if sum(minimum.values()) > n:  # the minimums exceed the overload threshold
        return None
    hints = list(endpoint_zones)  # step 1: every endpoint for its own zone
    giving = {z: hints.count(z) - desired[z] for z in zones if hints.count(z) > desired[z]}
    receiving = {z: desired[z] - hints.count(z) for z in zones if hints.count(z) < desired[z]}
    moves = []  # step 2: whole endpoints from the zones with most to spare to the neediest
    while giving and receiving:
        give = max(giving, key=lambda z: (giving[z], z))
        take = max(receiving, key=lambda z: (receiving[z], z))
        if (giving[give] < 1 and receiving[take] < 1) or giving[give] < 0.5 or \
                receiving[take] < 0.5:
            break
        moves.append((give, take))
        giving[give] -= 1
        receiving[take] -= 1
    for give, take in moves:  # step 3: the last endpoint still hinted for the giving zone
        index = len(hints) - 1 - [h == give and z == give for h, z in
                                  zip(hints, endpoint_zones)][::-1].index(True)
        hints[index] = take
    return hints


def slices(state: RunState, key: str, by_port: dict, family: str = IPV4) -> list[dict]:
    """A Service's EndpointSlices (discovery.k8s.io/v1) of one address type, as the
    controller writes them, from its endpoints of that family per port
    (services.endpoints)."""
    namespace, name = key.split("/", 1)
    record = state.services[key]
    groups = {}  # target ports of a pod (or an address, without a selector) -> its endpoints
    for port in record.ports:
        for pod, ip, target in by_port[port.name or str(port.port)]:
            groups.setdefault(pod or ip, (pod, ip, []))[2].append((port, target))
    sets = {}
    for pod, ip, targets in sorted(groups.values(), key=lambda item: item[1]):
        sets.setdefault(tuple((p.name, t, p.protocol) for p, t in targets), []).append((pod, ip))
    nodes = state.nodes
    out = []
    for index, (ports, members) in enumerate(sorted(sets.items())):
        on = [node_of(state, key, pod, ip) for pod, ip in members]
        zones = [nodes[n].topology_zone if n in nodes else "" for n in on]
        hints = zone_hints(zones, [r.topology_zone for r in nodes.values()]) \
            if record.topology_mode in AUTO else None
        endpoints = []
        for i, (pod, ip) in enumerate(members):
            endpoint = {"addresses": [ip], "conditions": {"ready": True}}
            if pod is not None:  # an address of a Service without a selector names no pod
                endpoint.update({"nodeName": on[i], "zone": zones[i], "targetRef": {
                    "kind": "Pod", "namespace": namespace, "name": state.pods[pod].name}})
            if hints:
                endpoint["hints"] = {"forZones": [{"name": hints[i]}]}
            endpoints.append(endpoint)
        out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": _slice_name(record, name, key, index, family),
                                 "namespace": namespace,
                                 "labels": {"kubernetes.io/service-name": name,
                                            "endpointslice.kubernetes.io/managed-by":
                                                "endpointslice-controller.k8s.io"}},
                    "addressType": family, "endpoints": endpoints,
                    "ports": [{"name": pname, "port": target, "protocol": proto}
                              for pname, target, proto in ports]})
    return out


def hinted(state: RunState, key: str, by_port: dict, family: str = IPV4) -> dict[str, str]:
    """{endpoint address: the zone it is hinted for} of a Service (empty: no hints)."""
    return {ep["addresses"][0]: ep["hints"]["forZones"][0]["name"]
            for s in slices(state, key, by_port, family) for ep in s["endpoints"]
            if "hints" in ep}


def node_of(state: RunState, key: str, pod_key: str | None, ip: str) -> str:
    """The node an endpoint of Service `key` is on: its pod's, or that of an address of a
    Service without a selector."""
    if pod_key is not None:
        return state.pods[pod_key].node
    return next((a.node for a in state.services[key].addresses if a.ip == ip), "")


def _slice_name(record, name, key, index, family=IPV4):
    """The controller's generated name; the API server names the one slice of its own
    Service (default/kubernetes, without a selector) after it."""
    if not record.selector and record.addresses and index == 0 and family == IPV4:
        return name
    return f"{name}-{_suffix(key if family == IPV4 else f'{key}#{family}', index)}"


def _suffix(key, index):
    """Five characters in the alphabet of generated names, stable for a Service's slice."""
    digest = hashlib.sha256(f"{key}#{index}".encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:5])
