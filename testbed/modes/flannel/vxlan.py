"""Flannel's vxlan backend, with the kernel objects flannel-io/flannel pkg/backend/vxlan makes.

Per node: `flannel.1`, VNI 1, UDP 8472, no learning, the lease's network address as /32.
Per peer: a route to the peer's lease via its VTEP address (onlink), a permanent ARP entry for
that address, and an FDB entry sending the peer's VTEP MAC to the peer node's underlay IP.

Dual-stack: a second device `flannel-v6.1` (the same VNI and port, bound to the node's IPv6
underlay address, the IPv6 lease's network address as /128) and the same three objects per
peer in IPv6: route, permanent neighbour entry, FDB entry to the peer's IPv6 address. Each
device has the kernel's MTU for its outer family (underlay − 50, − 70 for IPv6's longer
header), while pods keep FLANNEL_MTU (underlay − 50) for both families, as flannel writes it: a
full-size IPv6 pod packet is answered with ICMPv6 Packet Too Big (1430) and the sender's path
MTU follows, as on a real dual-stack flannel node.
"""
from testbed.model.context import NodeContext
from testbed.model.topology import ClusterSpec
from testbed.modes.base import UNDERLAY_DEV, register
from testbed.modes.flannel.base import FlannelMode

VXLAN_DEV = "flannel.1"
VXLAN_DEV_V6 = "flannel-v6.1"
VNI = 1
DSTPORT = 8472  # flannel's default (the Linux kernel's legacy VXLAN port), not IANA's 4789


@register
class VxlanMode(FlannelMode):
    name = "vxlan"
    summary = "flannel vxlan: kernel VXLAN device flannel.1 (VNI 1, UDP 8472)"
    requires = FlannelMode.requires + ("vxlan",)
    encap_overhead = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
    encap_overhead_v6 = 70  # with an IPv6 outer header (40)
    datapath = "kernel: VXLAN device flannel.1, Linux bridge cni0"

    def setup_backend(self, spec: ClusterSpec, node: NodeContext) -> None:
        for dev, local, lease, mac_fact in self.devices(node):
            run = node.ns.run
            run("ip", "link", "add", dev, "type", "vxlan", "id", VNI, "local", local.ip,
                "dev", UNDERLAY_DEV, "dstport", DSTPORT, "nolearning")
            overhead = self.encap_overhead if local.version == 4 else self.encap_overhead_v6
            run("ip", "link", "set", dev, "mtu", spec.mtu - overhead)
            host_bits = 32 if lease.version == 4 else 128
            run("ip", "addr", "add", f"{lease.network_address}/{host_bits}", "dev", dev)
            run("ip", "link", "set", dev, "up")
            node.facts[mac_fact] = node.ns.ip_json("link", "show", dev)[0]["address"]

    @staticmethod
    def devices(node: NodeContext) -> list[tuple]:
        """(device, underlay address, lease, fact naming its MAC) per family of the node."""
        found = []
        if node.lease is not None:  # not in an IPv6-only cluster (EnableIPv4: false)
            found.append((VXLAN_DEV, node.ip, node.lease, "vtep_mac"))
        if node.lease_v6 is not None and node.ip_v6 is not None:
            found.append((VXLAN_DEV_V6, node.ip_v6, node.lease_v6, "vtep_mac_v6"))
        return found

    def add_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        self.add_peers(spec, node, [peer])

    def add_peers(self, spec: ClusterSpec, node: NodeContext, peers: list[NodeContext]) -> None:
        routes, fdb = [], []
        for peer in peers:
            for dev, local, lease, mac_fact in self.devices(peer):
                vtep, mac = lease.network_address, peer.facts[mac_fact]
                routes += [f"route replace {lease} via {vtep} dev {dev} onlink",
                           f"neigh replace {vtep} lladdr {mac} dev {dev} nud permanent"]
                fdb.append(f"fdb replace {mac} dev {dev} dst {local.ip} self permanent")
        node.ns.batch("ip", routes)
        node.ns.batch("bridge", fdb)

    def remove_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        run = node.ns.run
        for dev, local, lease, mac_fact in self.devices(peer):
            vtep = lease.network_address
            run("ip", "route", "del", lease, "via", vtep, "dev", dev, "onlink", check=False)
            run("ip", "neigh", "del", vtep, "dev", dev, check=False)
            run("bridge", "fdb", "del", peer.facts[mac_fact], "dev", dev,
                "dst", local.ip, "self", check=False)

    def describe_node(self, node: NodeContext) -> dict:
        macs = {fact: node.facts.get(fact) for fact in ("vtep_mac", "vtep_mac_v6")
                if fact in node.facts}
        return {**super().describe_node(node), **macs}
