"""Flannel's host-gw backend: a plain route per peer lease via the peer node's underlay IP.

No encapsulation, so it only works where every node reaches every other node directly on one
L2 segment; flannel refuses other peers at run time, we refuse such a topology up front.
Dual-stack: the same route in IPv6, the peer's IPv6 lease via its IPv6 underlay address.
"""
from testbed.errors import TestbedError
from testbed.model.context import NodeContext
from testbed.model.topology import ClusterSpec
from testbed.modes.base import UNDERLAY_DEV, register
from testbed.modes.flannel.base import FlannelMode


@register
class HostGwMode(FlannelMode):
    name = "host-gw"
    summary = "flannel host-gw: routes to peer leases via peer node IPs (one L2 segment)"
    datapath = "kernel: IP routes via peer nodes, Linux bridge cni0"

    def check(self, spec: ClusterSpec) -> None:
        super().check(spec)
        if len({node.rack for node in spec.nodes}) > 1:
            by_rack = {}
            for node in spec.nodes:
                by_rack.setdefault(node.rack, []).append(node.name)
            racks = "; ".join(f"{rack}: {', '.join(names)}" for rack, names in by_rack.items())
            raise TestbedError(
                f"{spec.path}: mode host-gw needs every node on one L2 segment, but the nodes "
                f"are on {len(by_rack)} racks ({racks}); use vxlan (or another encapsulating "
                f"mode) across racks")

    def add_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        self.add_peers(spec, node, [peer])

    def add_peers(self, spec: ClusterSpec, node: NodeContext, peers: list[NodeContext]) -> None:
        node.ns.batch("ip", [f"route replace {lease} via {via.ip} dev {UNDERLAY_DEV}"
                             for peer in peers for lease, via in self.routes(peer)])

    @staticmethod
    def routes(peer: NodeContext) -> list[tuple]:
        """(lease, gateway) per family of the peer."""
        found = [(peer.lease, peer.ip)] if peer.lease is not None else []
        if peer.lease_v6 is not None and peer.ip_v6 is not None:
            found.append((peer.lease_v6, peer.ip_v6))
        return found

    def remove_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        for lease, via in self.routes(peer):
            node.ns.run("ip", "route", "del", lease, "via", via.ip, "dev", UNDERLAY_DEV,
                        check=False)
