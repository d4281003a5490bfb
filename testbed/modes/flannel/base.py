"""What every flannel backend shares: leases, subnet.env, the rules flanneld writes, and pods
on cni0.

Not a mode itself. Flannel's CNI plugin reads subnet.env and delegates to the reference
`bridge` plugin (bridge cni0, gateway .1) with `host-local` IPAM over the node's lease. With
`--ip-masq` (kube-flannel's default; `flannel: {ipMasq: false}` in a topology turns it off)
flanneld writes the nat chain FLANNEL-POSTRTG (pod traffic within the pod network untouched,
pods leaving it and outside sources entering it masqueraded, kube-proxy's marked traffic
left to kube-proxy) and the filter chain FLANNEL-FWD (forwarding to and from the pod
network accepted), as flannel's pkg/trafficmngr/iptables writes them. Inside the node's
namespace, towards the emulated underlay: nothing leaves the emulation.

Dual-stack (`ipFamily: dual`) is flannel's EnableIPv6: a second lease per node from the IPv6
network, FLANNEL_IPV6_NETWORK/FLANNEL_IPV6_SUBNET in subnet.env, the same chains in ip6tables,
and pods given an address of each family by host-local (two ranges) with a route to each
network, as flannel's CNI plugin delegates them.
"""
import ipaddress
import os
from dataclasses import dataclass

from testbed.model import ipam
from testbed.model.context import NodeContext
from testbed.model.spec import Section
from testbed.model.topology import ClusterSpec
from testbed.modes.base import Mode, pod_ranges

CNI_BRIDGE = "cni0"
NETWORK_NAME = "cbr0"  # the network name in kube-flannel's cni-conf.json


KUBE_PROXY_MARK = "0x4000/0x4000"  # traffic kube-proxy masquerades itself


MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}  # never masqueraded, per family


def flannel_rules(cluster_cidr: str, lease: str) -> str:
    """flanneld's masquerade and forward rules for one node, as iptables-restore input (or
    ip6tables-restore input, for IPv6 ranges)."""
    multicast = MULTICAST[ipaddress.ip_network(cluster_cidr).version]
    masq = '-m comment --comment "flanneld masq"'
    fwd = '-m comment --comment "flanneld forward"'
    return "\n".join([
        "*nat",
        ":FLANNEL-POSTRTG - [0:0]",
        f"-A POSTROUTING {masq} -j FLANNEL-POSTRTG",
        f"-A FLANNEL-POSTRTG -m mark --mark {KUBE_PROXY_MARK} {masq} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {lease} -d {cluster_cidr} {masq} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {cluster_cidr} -d {lease} {masq} -j RETURN",
        f"-A FLANNEL-POSTRTG ! -s {cluster_cidr} -d {lease} {masq} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {cluster_cidr} ! -d {multicast} {masq} -j MASQUERADE "
        "--random-fully",
        f"-A FLANNEL-POSTRTG ! -s {cluster_cidr} -d {cluster_cidr} {masq} -j MASQUERADE "
        "--random-fully",
        "COMMIT",
        "*filter",
        ":FLANNEL-FWD - [0:0]",
        f"-A FORWARD {fwd} -j FLANNEL-FWD",
        f"-A FLANNEL-FWD -s {cluster_cidr} {fwd} -j ACCEPT",
        f"-A FLANNEL-FWD -d {cluster_cidr} {fwd} -j ACCEPT",
        "COMMIT",
    ]) + "\n"


@dataclass(frozen=True)
class FlannelOptions:
    ip_masq: bool = True  # flanneld's --ip-masq rules on every node (kube-flannel runs it so)


def read_flannel(section: Section) -> FlannelOptions:
    """`flannel: {ipMasq: true|false}`, for all three backends."""
    section.fields({"ipMasq"})
    return FlannelOptions(section.boolean("ipMasq", True))


class FlannelMode(Mode):
    requires = ("bridge", "veth", "iptables")
    options = {"flannel": read_flannel}
    adoptable = True
    policy_hook = "bridged"  # flannel enforces nothing; Canal adds Felix on the pods' veths
    policy_note = "flannel enforces no NetworkPolicy (topology networkPolicy: {enforce: true} " \
        "adds it as Canal does)"
    ip_families = ("ipv4", "ipv6", "dual")

    def check(self, spec: ClusterSpec) -> None:
        ipam.check_lease_room(spec)

    def plan(self, spec: ClusterSpec) -> dict:
        return ipam.node_leases(spec)

    def plan_v6(self, spec: ClusterSpec) -> dict:
        return ipam.node_leases_v6(spec)

    def setup_node(self, spec: ClusterSpec, node: NodeContext) -> None:
        env_dir = os.path.join(node.dir, "run", "flannel")
        ip_masq = self.option(spec, "flannel").ip_masq
        node.facts["subnet_env"] = ipam.write_subnet_env(
            env_dir, spec.pod_cidr, node.lease, self.pod_mtu(spec), ip_masq,
            spec.pod_cidr_v6, node.lease_v6)
        self.setup_backend(spec, node)
        if ip_masq:
            for restore, cidr, lease in pod_ranges(spec, node):
                node.ns.run(restore, "--noflush", input=flannel_rules(str(cidr), str(lease)))

    def setup_backend(self, spec: ClusterSpec, node: NodeContext) -> None:
        """The backend's own devices on the node."""

    def network_config(self, spec: ClusterSpec, node: NodeContext) -> dict:
        env = ipam.parse_subnet_env(open(node.facts["subnet_env"]).read())
        return {
            "cniVersion": "1.0.0",
            "name": NETWORK_NAME,
            "type": "bridge",
            "bridge": CNI_BRIDGE,
            "isGateway": True,
            "isDefaultGateway": True,
            "hairpinMode": True,
            # as flannel's CNI plugin sets it: the bridge masquerades only when flanneld does not
            "ipMasq": env.get("FLANNEL_IPMASQ") != "true",
            "mtu": int(env["FLANNEL_MTU"]),
            "ipam": {
                "type": "host-local",
                "dataDir": os.path.join(node.dir, "cni", "networks"),
                # a range and a route per family, as flannel's CNI plugin writes them
                "ranges": [[{"subnet": subnet_of(env[key])}]
                           for key in ("FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET") if key in env],
                "routes": [{"dst": env[key]} for key in ("FLANNEL_NETWORK",
                                                         "FLANNEL_IPV6_NETWORK") if key in env],
            },
        }

    def describe_node(self, node: NodeContext) -> dict:
        return {"lease": ",".join(map(str, node.leases))}


def subnet_of(address: str) -> str:
    """subnet.env's FLANNEL_SUBNET (the lease's first address) -> the lease itself."""
    return str(ipaddress.ip_interface(address).network)
