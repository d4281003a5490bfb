"""A cluster as the topology describes it, once validated (spec.py reads and checks the YAML):
racks with their subnets, nodes with their underlay addresses, pods with their containers,
and the cluster-wide choices (mode, underlay, kube-proxy's mode, NetworkPolicy enforcement).
Frozen dataclasses: later stages only read them."""
import ipaddress
from dataclasses import dataclass, field
from typing import Optional

ROUTER_NAME = "router"
EXTERNAL_NAME = "external"  # a client host on the first rack, outside the cluster


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

    @property
    def router_ip(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.subnet[1]}/{self.subnet.prefixlen}")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    rack: str
    ip: ipaddress.IPv4Interface  # underlay address on eth0
    pods: tuple = ()


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
    def external_ip(self) -> ipaddress.IPv4Interface:
        """The external client's address: the first rack's last usable one."""
        subnet = self.racks[0].subnet
        return ipaddress.IPv4Interface(f"{subnet[-2]}/{subnet.prefixlen}")

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
