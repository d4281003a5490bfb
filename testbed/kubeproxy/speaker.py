"""A MetalLB-style speaker for LoadBalancer Services (layer-2 mode)."""
import sys

from testbed.kubeproxy.applier import underlay_device
from testbed.kubeproxy.services import selected_pods
from testbed.model.context import ClusterContext, NodeContext

# One ARP request for the address from the address itself, broadcast on the device (what
# `arping -U` sends): neighbours that know the address take the sender's MAC for it.
GRATUITOUS_ARP = """\
import socket, struct, sys
dev, ip = sys.argv[1], socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
mac = s.getsockname()[4]
s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip
       + b"\\x00" * 6 + ip)
"""


class Speaker:
    """MetalLB's layer-2 mode: one node of the first rack answers ARP for a LoadBalancer
    address (it holds it as a /32 on its underlay interface) and kube-proxy's rules on that
    node take the traffic from there. As MetalLB does, a Service with
    externalTrafficPolicy Local is announced from a node that has one of its endpoints (the
    first such node of the first rack), so that its traffic is not dropped there."""

    def __init__(self):
        self.announced = {}  # address -> node holding it

    def sync(self, cluster: ClusterContext) -> None:
        wanted = self.wanted(cluster)
        if wanted == self.announced:
            return
        for ip, node in sorted(self.announced.items()):
            if wanted.get(ip) != node:
                cluster.nodes[node].ns.run("ip", "addr", "del", f"{ip}/32", "dev",
                                           underlay_device(cluster.nodes[node]), check=False)
        for ip, node in sorted(wanted.items()):
            if self.announced.get(ip) != node:
                dev = underlay_device(cluster.nodes[node])
                cluster.nodes[node].ns.run("ip", "addr", "add", f"{ip}/32", "dev", dev)
                # the rack learns the holder at once (gratuitous ARP), as MetalLB tells it
                cluster.nodes[node].ns.run(sys.executable, "-c", GRATUITOUS_ARP, dev, ip,
                                           check=False)
        self.announced = wanted

    def wanted(self, cluster: ClusterContext) -> dict[str, str]:
        """{address: node} every LoadBalancer address should be announced from."""
        default = self.announcer(cluster)
        first_rack = [n.name for n in cluster.nodes.values()
                      if n.rack == cluster.spec.racks[0].name]
        out = {}
        for key, rec in cluster.state.services.items():
            if not rec.load_balancer_ip:
                continue
            node = default.name
            if rec.external_traffic_policy == "Local":
                hosting = {cluster.state.pods[pod].node for pod, _ip in
                           selected_pods(cluster.state, key)}
                node = next((n for n in first_rack if n in hosting), node)
            out[rec.load_balancer_ip] = node
        return out

    @staticmethod
    def announcer(cluster: ClusterContext) -> NodeContext:
        first_rack = cluster.spec.racks[0].name
        return next((n for n in cluster.nodes.values() if n.rack == first_rack),
                    next(iter(cluster.nodes.values())))
