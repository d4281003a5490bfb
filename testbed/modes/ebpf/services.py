"""Services in BPF maps: the ebpf mode's kube-proxy replacement.

As Cilium's agent with kubeProxyReplacement does, each node's service, backend and
reverse-NAT maps follow the Services and endpoints: every frontend (the ClusterIP, and for
external traffic the node's address with the NodePort, load-balancer addresses and external
IPs) gets a master entry (slot 0: how many backends, its reverse-NAT index, its flags) and one
entry per backend slot; the programs pick a slot per flow and remember it in the CT map.
Which endpoints a node's frontends pick from follows the traffic policies and topology hints
as kube-proxy's do (types.plan). No iptables or nftables rule is written.

Backend IDs and reverse-NAT indexes stay what they were as long as the backend or frontend
exists: a flow's CT entry names its backend by ID.
"""
import heapq
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Any

from testbed.kubeproxy.applier import ProxyApplier
from testbed.kubeproxy.types import ServicePort, firewall_sources, plan
from testbed.manifests.families import IPV4, IPV6
from testbed.model.context import NodeContext
from testbed.modes.ebpf import maps
from testbed.modes.ebpf.maps import MapWrite


@dataclass
class Allocator:
    """Stable small numbers for keys: an ID, once given, stays until the key is released;
    released IDs are given again, smallest first."""
    first: int = 1
    given: dict = field(default_factory=dict)
    released: list = field(default_factory=list)  # a heap

    def get(self, key: Hashable) -> int:
        if key not in self.given:
            self.given[key] = heapq.heappop(self.released) if self.released else \
                self.first + len(self.given)
        return self.given[key]

    def keep_only(self, keys: Collection[Hashable]) -> None:
        for key in [k for k in self.given if k not in keys]:
            heapq.heappush(self.released, self.given.pop(key))


@dataclass(frozen=True)
class Frontend:
    address: str
    port: int
    protocol: str
    external: bool  # NodePort, LoadBalancer or external IP
    affinity: bool
    backends: tuple  # Endpoints
    reject: bool = False  # no endpoint at all: refused (ICMP), else (policy Local) dropped
    source_ranges: tuple = ()  # loadBalancerSourceRanges of a load-balancer address

    @property
    def key(self) -> tuple:
        return (self.address, self.port, self.protocol)


def frontends(ports: list[ServicePort], node: str, node_ip: str, zone: str = "") -> list[Frontend]:
    """Every address:port a node's programs translate, with the endpoints it picks from."""
    out = []
    for sp in ports:
        if sp.protocol not in maps.PROTOCOLS:
            continue
        p = plan(sp, node, zone)
        internal = p.local if sp.internal_local else p.cluster
        external = p.local if sp.external_local else p.cluster
        reject = not p.has_endpoints  # kube-proxy REJECTs these, DROPs the policy-Local ones
        out.append(Frontend(sp.cluster_ip, sp.port, sp.protocol, False, sp.affinity,
                            internal if p.has_internal else (), reject))
        outside = [(node_ip, sp.node_port, ())] if sp.node_port else []
        ranges = tuple(firewall_sources(sp, node_ip)) if sp.source_ranges else ()
        outside += [(ip, sp.port, ranges) for ip in sp.load_balancer_ips]
        outside += [(ip, sp.port, ()) for ip in sp.external_ips]
        for address, port, allowed in outside:
            out.append(Frontend(address, port, sp.protocol, True, sp.affinity,
                                external if p.has_external else (), reject, allowed))
    return out


def render(fronts: list[Frontend], backend_ids: Allocator, rev_nat: Allocator,
           family: str = IPV4) -> dict:
    """{map name: {key bytes: value bytes}} of a node's service maps of one IP family (the
    frontends' family). The allocators keep only what is still used."""
    names = maps.SERVICE_MAPS[family]
    services, backends, reverse, ranges = {}, {}, {}, {}
    used_backends, used_fronts = set(), set()
    for fe in fronts:
        index = rev_nat.get(fe.key)
        used_fronts.add(fe.key)
        reverse[maps.rev_nat_key(index)] = maps.rev_nat_value(fe.address, fe.port)
        flags = sum(bit for bit, on in ((maps.SVC_EXTERNAL, fe.external),
                                        (maps.SVC_AFFINITY, fe.affinity),
                                        (maps.SVC_SOURCE_RANGE, bool(fe.source_ranges)),
                                        (maps.SVC_REJECT, fe.reject)) if on)
        for cidr in fe.source_ranges:
            ranges[maps.source_range_key(index, cidr)] = b"\x01"
        services[maps.service_key(fe.address, fe.port, fe.protocol)] = maps.service_value(
            count=len(fe.backends), rev_nat=index, flags=flags)
        for slot, ep in enumerate(fe.backends, start=1):
            backend = (ep.ip, ep.port, fe.protocol)
            used_backends.add(backend)
            backend_id = backend_ids.get(backend)
            backends[maps.backend_key(backend_id)] = maps.backend_value(*backend)
            services[maps.service_key(fe.address, fe.port, fe.protocol, slot)] = \
                maps.service_value(backend_id=backend_id, rev_nat=index, flags=flags)
    backend_ids.keep_only(used_backends)
    rev_nat.keep_only(used_fronts)
    return {names.backends: backends, names.reverse_nat: reverse, names.source_ranges: ranges,
            names.services: services}


def _is_master(key: bytes) -> bool:
    return key[-6:-4] == b"\0\0"  # the slot, before the protocol and padding


def changes(old: dict | None, new: dict, family: str = IPV4) -> list[MapWrite]:
    """The writes that take a node's maps (of one family) from `old` to `new`, in an order
    that never shows a frontend more backends than its slots hold: backends and reverse-NAT
    first, then backend slots, then the masters; removals last, masters before their
    slots."""
    names = maps.SERVICE_MAPS[family]
    lookups = (names.backends, names.reverse_nat, names.source_ranges)
    old = old or {}
    updates, removals = [], []
    for name in lookups:
        updates += [MapWrite(name, k, v) for k, v in new[name].items()
                    if old.get(name, {}).get(k) != v]
    services, held = new[names.services], old.get(names.services, {})
    for masters in (False, True):
        updates += [MapWrite(names.services, k, v) for k, v in services.items()
                    if _is_master(k) == masters and held.get(k) != v]
    for masters in (True, False):
        removals += [MapWrite(names.services, k) for k in held
                     if k not in services and _is_master(k) == masters]
    for name in lookups:
        removals += [MapWrite(name, k) for k in old.get(name, {}) if k not in new[name]]
    return updates + removals


class BpfServices(ProxyApplier):
    """The kube-proxy replacement: writes each node's service maps, no packet-filter rule.
    Health-check node ports are served by the node's cilium-agent@NODE (kube-proxy's
    listeners, agent.py), as Cilium's agent serves them."""

    name = "bpf"  # the proxy mode a run records: kube-proxy replaced
    ip_families = (IPV4, IPV6)  # an instance per family, each with its family's maps
    agent_name = "cilium-agent"
    nat_by = "the datapath's BPF service maps"
    tracked_by = "the datapath's BPF CT map"

    @classmethod
    def describe(cls, sp: ServicePort) -> list[str]:
        return [f"BPF service maps (kube-proxy replaced), port {sp.port_name or sp.port}:",
                f"  frontend {sp.cluster_ip}:{sp.port}/{sp.protocol} in {maps.SERVICES} of "
                "every node, one slot per backend (`testbed bpf NODE`)"]

    def __init__(self, maps_dir: Callable[[str], str]):
        super().__init__()
        self.maps_dir = maps_dir  # node name -> the directory its maps are pinned in
        self.backend_ids: dict[str, Allocator] = {}
        self.rev_nat: dict[str, Allocator] = {}

    def family_proxier(self) -> "BpfServices":
        proxier = BpfServices(self.maps_dir)
        proxier.family = IPV6
        return proxier

    def render(self, ports: list[ServicePort], pod_cidr: str, node: NodeContext) -> Any:
        address = node.ip_v6 if self.family == IPV6 and node.ip_v6 is not None else node.ip
        fronts = frontends(ports, node.name, str(address.ip), self.zones.get(node.name, ""))
        return render(fronts, self.backend_ids.setdefault(node.name, Allocator()),
                      self.rev_nat.setdefault(node.name, Allocator()), self.family)

    def apply(self, node: NodeContext, rendered: Any) -> None:
        maps.write(self.maps_dir(node.name), changes(self.last.get(node.name), rendered,
                                                     self.family))
        self.last[node.name] = rendered

    def route_services(self, node: NodeContext) -> None:
        """The mode routes the service range to cilium_host, whose program translates."""
