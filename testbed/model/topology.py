"""A cluster as the topology describes it, once validated (spec.py reads and checks the YAML):
racks with their subnets, nodes with their underlay addresses, pods with their containers,
and the cluster-wide choices (IP families, mode, underlay, kube-proxy's mode, NetworkPolicy
enforcement). Frozen dataclasses: later stages only read them.

IP families as kind declares them (`ipFamily: ipv4 | ipv6 | dual`): a dual-stack cluster has an
IPv6 pod CIDR, an IPv6 subnet per rack and an IPv6 address per node beside the IPv4 ones, IPv4
first (kind's order for `dual`)."""
import ipaddress
from dataclasses import dataclass, field
from typing import Optional

ROUTER_NAME = "router"
EXTERNAL_NAME = "external"  # a client host on the first rack, outside the cluster

IPV4, IPV6 = "IPv4", "IPv6"  # Kubernetes' names (Service.spec.ipFamilies)
# the topology's ipFamily -> the cluster's families, the primary first
IP_FAMILIES = {"ipv4": (IPV4,), "ipv6": (IPV6,), "dual": (IPV4, IPV6)}


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    command: tuple
    env: tuple = ()  # ((name, value), ...) set for the container's process


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    node: str
    labels: dict = field(default_factory=dict, hash=False, compare=False)
    containers: tuple = ()
    dns: dict = field(default_factory=dict, hash=False, compare=False)  # kinds.PodDNS.record()
    host_network: bool = False  # in its node's network namespace: no sandbox, no CNI

    @property
    def key(self) -> str:
        """"<namespace>/<name>": a pod's identity, as Kubernetes scopes names."""
        return pod_key(self.namespace, self.name)


def pod_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class RackSpec:
    name: str
    subnet: ipaddress.IPv4Network
    bandwidth: Optional[float] = None  # Mbit/s of each link into the rack, None = unshaped
    delay: Optional[float] = None      # ms added by netem at each end of each link into the rack
    zone: str = ""                     # its nodes' topology.kubernetes.io/zone ("": its name)
    subnet_v6: Optional[ipaddress.IPv6Network] = None  # in a cluster with IPv6

    @property
    def router_ip(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.subnet[1]}/{self.subnet.prefixlen}")

    @property
    def router_ip_v6(self) -> Optional[ipaddress.IPv6Interface]:
        return host_v6(self.subnet_v6, 1) if self.subnet_v6 else None


def host_v6(subnet: ipaddress.IPv6Network, host: int) -> ipaddress.IPv6Interface:
    """The IPv6 address of the rack's host whose IPv4 address ends in .`host`: the same
    digits (192.168.1.11 -> fd00:192:168:1::11), so that a node's two addresses read alike."""
    return ipaddress.IPv6Interface(
        f"{subnet.network_address + int(str(host), 16)}/{subnet.prefixlen}")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    rack: str
    ip: ipaddress.IPv4Interface  # underlay address on eth0
    pods: tuple = ()
    ip_v6: Optional[ipaddress.IPv6Interface] = None  # its IPv6 one, in a cluster with IPv6

    @property
    def addresses(self) -> tuple:
        """Its underlay addresses (interfaces), IPv4 first."""
        return (self.ip,) + ((self.ip_v6,) if self.ip_v6 else ())


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    path: str
    pod_cidr: ipaddress.IPv4Network
    node_prefix: int
    mtu: int
    mode: Optional[str]
    racks: tuple
    nodes: tuple
    underlay: str = "linux"       # one of UNDERLAYS
    manifests: tuple = ()         # Kubernetes manifests (absolute paths) applied after pods
    external_client: bool = False  # a host EXTERNAL_NAME on the first rack, not a node
    proxy_mode: str = ""          # kube-proxy's mode by name; "": its default
    policy_enforce: Optional[bool] = None  # NetworkPolicy enforced? None: as the mode's plugin
    # the modes' own options, by the topology key that holds them ("bgp", "udp", ...): what
    # each mode's reader made of its section (Mode.options), read back through Mode.option()
    options: dict = field(default_factory=dict, hash=False, compare=False)
    ip_family: str = "ipv4"       # one of IP_FAMILIES
    pod_cidr_v6: Optional[ipaddress.IPv6Network] = None  # with IPv6: the pods' IPv6 range
    node_prefix_v6: int = 64      # each node's IPv6 pod subnet (kube-controller-manager's)

    @property
    def families(self) -> tuple:
        """The cluster's IP families, the primary first: ("IPv4",), ("IPv6",) or both."""
        return IP_FAMILIES[self.ip_family]

    @property
    def has_ipv6(self) -> bool:
        return IPV6 in self.families

    @property
    def pod_cidrs(self) -> tuple:
        """The pod CIDRs, one per family in the families' order (kind's podSubnet)."""
        by_family = {IPV4: self.pod_cidr, IPV6: self.pod_cidr_v6}
        return tuple(by_family[f] for f in self.families)

    @property
    def load_balancer_pool(self) -> tuple[ipaddress.IPv4Address, ...]:
        """Addresses for LoadBalancer Services (announced on the first rack as MetalLB's L2
        mode does): the first rack's addresses below the external client's, at most 14,
        none a node's."""
        subnet = self.racks[0].subnet
        taken = {n.ip.ip for n in self.nodes}
        pool: list[ipaddress.IPv4Address] = []
        for index in range(subnet.num_addresses - 3, 1, -1):
            if subnet[index] in taken or len(pool) == 14:
                break
            pool.append(subnet[index])
        return tuple(reversed(pool))

    @property
    def load_balancer_addresses(self) -> tuple:
        """Both families' pools (what LoadBalancer Services are given addresses from)."""
        return self.load_balancer_pool + self.load_balancer_pool_v6

    @property
    def load_balancer_pool_v6(self) -> tuple[ipaddress.IPv6Address, ...]:
        """The IPv6 pool of a cluster with IPv6: the first rack's IPv6 addresses written with
        the IPv4 pool's digits (192.168.1.240 -> fd00:192:168:1::240)."""
        subnet = self.racks[0].subnet_v6
        if subnet is None:
            return ()
        return tuple(host_v6(subnet, int(str(ip).rsplit(".", 1)[1])).ip
                     for ip in self.load_balancer_pool)

    @property
    def external_ip(self) -> ipaddress.IPv4Interface:
        """The external client's address: the first rack's last usable one."""
        subnet = self.racks[0].subnet
        return ipaddress.IPv4Interface(f"{subnet[-2]}/{subnet.prefixlen}")

    @property
    def external_ip_v6(self) -> Optional[ipaddress.IPv6Interface]:
        """The external client's IPv6 address (with IPv6), read as its IPv4 one."""
        first = self.racks[0]
        if first.subnet_v6 is None:
            return None
        return host_v6(first.subnet_v6, int(str(self.external_ip.ip).rsplit(".", 1)[1]))

    @property
    def pods(self) -> list[PodSpec]:
        return [pod for node in self.nodes for pod in node.pods]

    @property
    def has_router(self) -> bool:
        return len(self.racks) > 1

    @property
    def namespace_holders(self) -> list[str]:
        """Names of the underlay's namespaces: racks, nodes, the router, the external client."""
        return ([r.name for r in self.racks] + [n.name for n in self.nodes] +
                ([ROUTER_NAME] if self.has_router else []) +
                ([EXTERNAL_NAME] if self.external_client else []))

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    def rack(self, name: str) -> RackSpec:
        return next(r for r in self.racks if r.name == name)
