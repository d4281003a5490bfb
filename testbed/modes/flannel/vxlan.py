"""Flannel's vxlan backend, with the kernel objects flannel-io/flannel pkg/backend/vxlan makes.

Per node: `flannel.1`, VNI 1, UDP 8472, no learning, the lease's network address as /32.
Per peer: a route to the peer's lease via its VTEP address (onlink), a permanent ARP entry for
that address, and an FDB entry sending the peer's VTEP MAC to the peer node's underlay IP.
"""
from testbed.model.context import NodeContext
from testbed.model.topology import ClusterSpec
from testbed.modes.base import UNDERLAY_DEV, register
from testbed.modes.flannel.base import FlannelMode

VXLAN_DEV = "flannel.1"
VNI = 1
DSTPORT = 8472  # flannel's default (the Linux kernel's legacy VXLAN port), not IANA's 4789


@register
class VxlanMode(FlannelMode):
    name = "vxlan"
    summary = "flannel vxlan: kernel VXLAN device flannel.1 (VNI 1, UDP 8472)"
    requires = FlannelMode.requires + ("vxlan",)
    encap_overhead = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
    datapath = "kernel: VXLAN device flannel.1, Linux bridge cni0"

    def setup_backend(self, spec: ClusterSpec, node: NodeContext) -> None:
        run = node.ns.run
        run("ip", "link", "add", VXLAN_DEV, "type", "vxlan", "id", VNI, "local", node.ip.ip,
            "dev", UNDERLAY_DEV, "dstport", DSTPORT, "nolearning")
        run("ip", "link", "set", VXLAN_DEV, "mtu", spec.mtu - self.encap_overhead)
        run("ip", "addr", "add", f"{node.lease.network_address}/32", "dev", VXLAN_DEV)
        run("ip", "link", "set", VXLAN_DEV, "up")
        node.facts["vtep_mac"] = node.ns.ip_json("link", "show", VXLAN_DEV)[0]["address"]

    def add_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        self.add_peers(spec, node, [peer])

    def add_peers(self, spec: ClusterSpec, node: NodeContext, peers: list[NodeContext]) -> None:
        routes, fdb = [], []
        for peer in peers:
            vtep, mac = peer.lease.network_address, peer.facts["vtep_mac"]
            routes += [f"route replace {peer.lease} via {vtep} dev {VXLAN_DEV} onlink",
                       f"neigh replace {vtep} lladdr {mac} dev {VXLAN_DEV} nud permanent"]
            fdb.append(f"fdb replace {mac} dev {VXLAN_DEV} dst {peer.ip.ip} self permanent")
        node.ns.batch("ip", routes)
        node.ns.batch("bridge", fdb)

    def remove_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        run, vtep = node.ns.run, peer.lease.network_address
        run("ip", "route", "del", peer.lease, "via", vtep, "dev", VXLAN_DEV, "onlink", check=False)
        run("ip", "neigh", "del", vtep, "dev", VXLAN_DEV, check=False)
        run("bridge", "fdb", "del", peer.facts["vtep_mac"], "dev", VXLAN_DEV,
            "dst", peer.ip.ip, "self", check=False)

    def describe_node(self, node: NodeContext) -> dict:
        return {**super().describe_node(node), "vtep_mac": node.facts.get("vtep_mac")}
