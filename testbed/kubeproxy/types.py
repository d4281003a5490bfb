"""What every kube-proxy mode shares: the ServicePort it renders rules from (one port of one
Service with its endpoints, as kube-proxy's ServicePortName and endpoints cache give it), and
the constants the modes agree on."""
import ipaddress
from dataclasses import dataclass
from typing import NamedTuple

from testbed.manifests.families import IPV4
from testbed.manifests.families import join_host_port as host_port

MASQ_MARK = "0x4000"
AFFINITY_TIMEOUT_S = 10800


class Endpoint(NamedTuple):
    """One ready endpoint of a port: the pod's address, the target port, its node (the
    EndpointSlice's nodeName, which traffic policies Local go by), and the zone the
    EndpointSlice controller hinted it for (hints.forZones; "" none)."""
    ip: str
    port: int
    node: str = ""
    hint: str = ""

    def __str__(self) -> str:
        return host_port(self.ip, self.port)


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with what kube-proxy needs of it."""
    namespace: str
    name: str
    port_name: str
    protocol: str        # "tcp" or "udp"
    cluster_ip: str
    port: int
    node_port: int       # 0: none
    affinity: bool       # sessionAffinity: ClientIP
    endpoints: tuple     # Endpoints (plain (ip, port) pairs are taken too), in kube-proxy's
    # order: sorted as "ip:port" strings
    load_balancer_ips: tuple = ()  # status.loadBalancer.ingress
    external_ips: tuple = ()       # spec.externalIPs
    source_ranges: tuple = ()      # spec.loadBalancerSourceRanges
    external_local: bool = False   # externalTrafficPolicy: Local
    internal_local: bool = False   # internalTrafficPolicy: Local
    health_check_node_port: int = 0
    affinity_timeout: int = AFFINITY_TIMEOUT_S
    topology_auto: bool = False    # annotation service.kubernetes.io/topology-mode: Auto
    family: str = IPV4             # of its ClusterIP and endpoints: one ServicePort per family

    def __post_init__(self):
        eps = sorted((Endpoint(*ep) for ep in self.endpoints), key=str)
        object.__setattr__(self, "endpoints", tuple(eps))

    @property
    def id(self) -> str:
        """kube-proxy's ServicePortName: namespace/name, then :port-name if it has one."""
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")

    @property
    def externally_accessible(self) -> bool:
        """A NodePort, an external IP or a load-balancer address reaches it from outside."""
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    def local_endpoints(self, node: str) -> tuple:
        return tuple(ep for ep in self.endpoints if ep.node == node)


@dataclass(frozen=True)
class Plan:
    """How kube-proxy on one node handles one ServicePort (its CategorizeEndpoints and the
    has*Endpoints flags of syncProxyRules): which endpoints the cluster-wide and node-local
    policy chains pick from, and whether internal and external traffic has anywhere to go."""
    cluster: tuple       # endpoints of the cluster policy chain ((): no such chain)
    local: tuple         # endpoints of the local policy chain ((): no such chain)
    has_endpoints: bool
    has_internal: bool
    has_external: bool

    @property
    def endpoints(self) -> tuple:
        """Every endpoint this node DNATs to (each gets one endpoint chain)."""
        return self.cluster + tuple(e for e in self.local if e not in self.cluster)

    @property
    def internal_filter(self) -> str:
        """What the filter side does to internal traffic with nowhere to go."""
        return "" if self.has_internal else "REJECT" if not self.has_endpoints else "DROP"

    @property
    def external_filter(self) -> str:
        return "" if self.has_external else "REJECT" if not self.has_endpoints else "DROP"


def topology_endpoints(sp: ServicePort, zone: str) -> tuple:
    """The endpoints kube-proxy in `zone` picks from for cluster-wide traffic: with
    topology-aware routing on and every endpoint hinted, those hinted for its zone (all of them
    when none is: kube-proxy's canUseTopology falls back)."""
    if not sp.topology_auto or not sp.endpoints or not all(ep.hint for ep in sp.endpoints):
        return sp.endpoints
    mine = tuple(ep for ep in sp.endpoints if ep.hint == zone)
    return mine or sp.endpoints


def plan(sp: ServicePort, node: str, zone: str = "") -> Plan:
    """kube-proxy's view of `sp` from `node` (in topology zone `zone`)."""
    local = sp.local_endpoints(node)
    uses_cluster = not sp.internal_local or (sp.externally_accessible and not sp.external_local)
    uses_local = sp.internal_local or (sp.external_local and sp.externally_accessible)
    has = bool(sp.endpoints)
    cluster = topology_endpoints(sp, zone) if uses_cluster else ()
    return Plan(cluster, local if uses_local else (), has,
                has and (bool(local) or not sp.internal_local),
                has and (bool(local) or not sp.external_local))


def firewall_sources(sp: ServicePort, node_ip: str) -> list[str]:
    """The sources loadBalancerSourceRanges let in: the ranges (spaces trimmed, as kube-proxy
    trims them) and, when a range holds the node's own address, the load-balancer addresses
    (a node reaching its own LB address comes from that address)."""
    sources = [r.strip() for r in sp.source_ranges]
    node = ipaddress.ip_address(node_ip) if node_ip else None
    if node and any(node in ipaddress.ip_network(r, strict=False) for r in sources
                    if ipaddress.ip_network(r, strict=False).version == node.version):
        sources += list(sp.load_balancer_ips)
    return sources


def filter_comment(sp: ServicePort, verdict: str) -> str:
    """kube-proxy's comment on a REJECT or DROP of traffic that has no endpoint to go to."""
    return f"{sp.id} has no endpoints" if verdict == "REJECT" else \
        f"{sp.id} has no local endpoints"
