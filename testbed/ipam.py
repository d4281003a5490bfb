"""Pod address planning: per-node leases out of the cluster's pod CIDR.

Flannel with the Kubernetes subnet manager (kube-flannel's default) takes each node's lease from
node.spec.podCIDR, which kube-controller-manager hands out in order from the start of the
cluster CIDR: node 1 gets 10.244.0.0/24, node 2 10.244.1.0/24, and so on. We do the same.
"""
import os


def node_leases(spec):
    """{node name: IPv4Network} — one /nodePrefix subnet per node, in the order of the file."""
    subnets = spec.pod_cidr.subnets(new_prefix=spec.node_prefix)
    return {node.name: next(subnets) for node in spec.nodes}


def render_subnet_env(network, lease, mtu, ipmasq=False):
    """flannel's /run/flannel/subnet.env. FLANNEL_SUBNET is the lease's first host address."""
    return (f"FLANNEL_NETWORK={network}\n"
            f"FLANNEL_SUBNET={lease[1]}/{lease.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\n"
            f"FLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n")


def parse_subnet_env(text):
    """The inverse of render_subnet_env, as flannel's CNI plugin reads the file."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def write_subnet_env(directory, network, lease, mtu):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "subnet.env")
    with open(path, "w") as f:
        f.write(render_subnet_env(network, lease, mtu))
    return path
