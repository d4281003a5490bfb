"""Pod address planning: per-node leases (flannel) or blocks (Calico) out of the pod CIDR.

Flannel with the Kubernetes subnet manager (kube-flannel's default) takes each node's lease from
node.spec.podCIDR, which kube-controller-manager hands out in order from the start of the
cluster CIDR: node 1 gets 10.244.0.0/24, node 2 10.244.1.0/24, and so on. We do the same.
"""
import ipaddress
import os
from ipaddress import IPv4Network, IPv6Network

from testbed.errors import TestbedError
from testbed.model.topology import ClusterSpec


def node_leases(spec: ClusterSpec) -> dict[str, ipaddress.IPv4Network]:
    """{node name: IPv4Network} — one /nodePrefix subnet per node, in the order of the file."""
    subnets = spec.pod_cidr.subnets(new_prefix=spec.node_prefix)
    return {node.name: next(subnets) for node in spec.nodes}


def node_leases_v6(spec: ClusterSpec) -> dict[str, ipaddress.IPv6Network]:
    """{node name: IPv6Network} in a cluster with IPv6 (else empty): one /nodePrefixV6 per
    node from the IPv6 pod CIDR, in order, as kube-controller-manager fills podCIDRs[1]."""
    if spec.pod_cidr_v6 is None:
        return {}
    subnets = spec.pod_cidr_v6.subnets(new_prefix=spec.node_prefix_v6)
    return {node.name: next(subnets) for node in spec.nodes}


def check_lease_room(spec: ClusterSpec) -> None:
    """Refuse more pods on a node than its lease holds: a lease loses its network, broadcast
    and gateway addresses to pods (an IPv6 one its network and gateway addresses)."""
    rooms = [("nodePrefix", spec.node_prefix, 2 ** (32 - spec.node_prefix) - 3)]
    if spec.pod_cidr_v6 is not None:
        rooms.append(("nodePrefixV6", spec.node_prefix_v6, 2 ** (128 - spec.node_prefix_v6) - 2))
    for key, prefix, room in rooms:
        for node in spec.nodes:
            if len(node.pods) > room:
                raise TestbedError(
                    f"{spec.path}: node {node.name} has {len(node.pods)} pods but its "
                    f"/{prefix} lease holds {room} pod addresses; use larger leases "
                    f"(a smaller {key}) or fewer pods per node")


CALICO_BLOCK_PREFIX = 26   # Calico's default IPAM block size
CALICO_BLOCK_PREFIX_V6 = 122  # and for IPv6 pools (blockSize 122: 64 addresses too)
CALICO_BLOCK_SIZE = 2 ** (32 - CALICO_BLOCK_PREFIX)


def calico_blocks(spec: ClusterSpec, prefix: int = CALICO_BLOCK_PREFIX,
                  cidr: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None) -> dict:
    """{node name: [network, ...]} — Calico-style affine blocks of `cidr` (default: the
    IPv4 pod CIDR), handed out in order.

    Every address of a block goes to pods (each pod gets a /32 or /128; there is no gateway
    or broadcast address to keep), so a node gets one more block each time its pods outgrow
    the ones it has.
    """
    cidr = cidr or spec.pod_cidr
    size = 2 ** (cidr.max_prefixlen - prefix)
    free = cidr.subnets(new_prefix=prefix)
    out = {}
    for node in spec.nodes:
        wanted = max(1, -(-len(node.pods) // size))
        try:
            out[node.name] = [next(free) for _ in range(wanted)]
        except StopIteration:
            raise ValueError(f"pod CIDR {cidr} has too few /{prefix} blocks for the pods "
                             f"of node {node.name}") from None
    return out


def render_subnet_env(network: IPv4Network, lease: IPv4Network | None, mtu: int,
                      ipmasq: bool = False, network_v6: IPv6Network | None = None,
                      lease_v6: IPv6Network | None = None) -> str:
    """flannel's /run/flannel/subnet.env. FLANNEL_SUBNET is the lease's first host address;
    with IPv6 (flannel's EnableIPv6) FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET follow, as
    flannel's WriteSubnetFile writes them; without an IPv4 lease (EnableIPv4: false, an
    IPv6-only cluster) the IPv4 keys are left out as it leaves them."""
    text = ""
    if lease is not None:
        text = (f"FLANNEL_NETWORK={network}\n"
                f"FLANNEL_SUBNET={lease[1]}/{lease.prefixlen}\n")
    if network_v6 is not None and lease_v6 is not None:
        text += (f"FLANNEL_IPV6_NETWORK={network_v6}\n"
                 f"FLANNEL_IPV6_SUBNET={lease_v6[1]}/{lease_v6.prefixlen}\n")
    return text + (f"FLANNEL_MTU={mtu}\n"
                   f"FLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n")


def parse_subnet_env(text: str) -> dict[str, str]:
    """The inverse of render_subnet_env, as flannel's CNI plugin reads the file."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def write_subnet_env(directory: str, network: IPv4Network, lease: IPv4Network | None,
                     mtu: int,
                     ipmasq: bool = False, network_v6: IPv6Network | None = None,
                     lease_v6: IPv6Network | None = None) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "subnet.env")
    with open(path, "w") as f:
        f.write(render_subnet_env(network, lease, mtu, ipmasq, network_v6, lease_v6))
    return path
