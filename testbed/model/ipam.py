"""Pod address planning: per-node leases (flannel) or blocks (Calico) out of the pod CIDR.

Flannel with the Kubernetes subnet manager (kube-flannel's default) takes each node's lease from
node.spec.podCIDR, which kube-controller-manager hands out in order from the start of the
cluster CIDR: node 1 gets 10.244.0.0/24, node 2 10.244.1.0/24, and so on. We do the same.
"""
import ipaddress
import os
from ipaddress import IPv4Network

from testbed.errors import TestbedError
from testbed.model.topology import ClusterSpec


def node_leases(spec: ClusterSpec) -> dict[str, ipaddress.IPv4Network]:
    """{node name: IPv4Network} — one /nodePrefix subnet per node, in the order of the file."""
    subnets = spec.pod_cidr.subnets(new_prefix=spec.node_prefix)
    return {node.name: next(subnets) for node in spec.nodes}


def check_lease_room(spec: ClusterSpec) -> None:
    """Refuse more pods on a node than its lease holds: a lease loses its network, broadcast
    and gateway addresses to pods."""
    room = 2 ** (32 - spec.node_prefix) - 3
    for node in spec.nodes:
        if len(node.pods) > room:
            raise TestbedError(
                f"{spec.path}: node {node.name} has {len(node.pods)} pods but its "
                f"/{spec.node_prefix} lease holds {room} pod addresses; use larger leases "
                "(a smaller nodePrefix) or fewer pods per node")


CALICO_BLOCK_PREFIX = 26   # Calico's default IPAM block size
CALICO_BLOCK_SIZE = 2 ** (32 - CALICO_BLOCK_PREFIX)


def calico_blocks(spec: ClusterSpec,
                  prefix: int = CALICO_BLOCK_PREFIX) -> dict[str, list[ipaddress.IPv4Network]]:
    """{node name: [IPv4Network, ...]} — Calico-style affine blocks, handed out in order.

    Every address of a block goes to pods (each pod gets a /32; there is no gateway or
    broadcast address to keep), so a node gets one more block each time its pods outgrow the
    ones it has.
    """
    size = 2 ** (32 - prefix)
    free = spec.pod_cidr.subnets(new_prefix=prefix)
    out = {}
    for node in spec.nodes:
        wanted = max(1, -(-len(node.pods) // size))
        try:
            out[node.name] = [next(free) for _ in range(wanted)]
        except StopIteration:
            raise ValueError(f"pod CIDR {spec.pod_cidr} has too few /{prefix} blocks for the pods "
                             f"of node {node.name}") from None
    return out


def render_subnet_env(network: IPv4Network, lease: IPv4Network, mtu: int,
                      ipmasq: bool = False) -> str:
    """flannel's /run/flannel/subnet.env. FLANNEL_SUBNET is the lease's first host address."""
    return (f"FLANNEL_NETWORK={network}\n"
            f"FLANNEL_SUBNET={lease[1]}/{lease.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\n"
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


def write_subnet_env(directory: str, network: IPv4Network, lease: IPv4Network, mtu: int,
                     ipmasq: bool = False) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "subnet.env")
    with open(path, "w") as f:
        f.write(render_subnet_env(network, lease, mtu, ipmasq))
    return path
