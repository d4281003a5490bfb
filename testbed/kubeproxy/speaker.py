"""A MetalLB-style speaker for LoadBalancer Services (layer-2 mode): ARP for IPv4 addresses,
neighbour discovery (NDP) for IPv6 ones, as MetalLB's layer-2 mode answers both."""
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


# An unsolicited neighbour advertisement for the address, from the address, to all nodes
# (ff02::1), override set (what MetalLB's NDP responder sends when it takes an address over):
# neighbours that know the address take the sender's MAC for it. The kernel fills in the
# ICMPv6 checksum.
UNSOLICITED_NA = """\
import socket, struct, sys
dev, ip = sys.argv[1], sys.argv[2]
mac = open(f"/sys/class/net/{dev}/address").read().strip()
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.bind((ip, 0))
na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, ip)
na += bytes([2, 1]) + bytes.fromhex(mac.replace(":", ""))
s.sendto(na, ("ff02::1", 0, 0, socket.if_nametoindex(dev)))
"""


def _host(ip: str) -> tuple[str, list[str], str]:
    """(prefix length, extra `ip addr` words, announcement script) of an address: an IPv6
    one without duplicate detection (the address is the pool's), announced by NDP."""
    if ":" in ip:
        return "128", ["nodad"], UNSOLICITED_NA
    return "32", [], GRATUITOUS_ARP


class Speaker:
    """MetalLB's layer-2 mode: one node of the first rack answers ARP (IPv6: neighbour
    solicitations) for a LoadBalancer address (it holds it as a /32, or /128, on its underlay
    interface) and kube-proxy's rules on that node take the traffic from there. As MetalLB
    does, a Service with externalTrafficPolicy Local is announced from a node that has one of
    its endpoints (the first such node of the first rack), so that its traffic is not dropped
    there."""

    def __init__(self):
        self.announced = {}  # address -> node holding it

    def sync(self, cluster: ClusterContext) -> None:
        wanted = self.wanted(cluster)
        if wanted == self.announced:
            return
        for ip, node in sorted(self.announced.items()):
            if wanted.get(ip) != node:
                cluster.nodes[node].ns.run("ip", "addr", "del", f"{ip}/{_host(ip)[0]}", "dev",
                                           underlay_device(cluster.nodes[node]), check=False)
        for ip, node in sorted(wanted.items()):
            if self.announced.get(ip) != node:
                dev = underlay_device(cluster.nodes[node])
                length, extra, announce = _host(ip)
                cluster.nodes[node].ns.run("ip", "addr", "add", f"{ip}/{length}", "dev", dev,
                                           *extra)
                # the rack learns the holder at once (gratuitous ARP, an unsolicited
                # neighbour advertisement), as MetalLB tells it
                cluster.nodes[node].ns.run(sys.executable, "-c", announce, dev, ip,
                                           check=False)
        self.announced = wanted

    def wanted(self, cluster: ClusterContext) -> dict[str, str]:
        """{address: node} every LoadBalancer address should be announced from."""
        default = self.announcer(cluster)
        first_rack = [n.name for n in cluster.nodes.values()
                      if n.rack == cluster.spec.racks[0].name]
        out = {}
        for key, rec in cluster.state.services.items():
            if not rec.all_load_balancer_ips:
                continue
            node = default.name
            if rec.external_traffic_policy == "Local":
                hosting = {cluster.state.pods[pod].node for pod, _ip in
                           selected_pods(cluster.state, key)}
                node = next((n for n in first_rack if n in hosting), node)
            out.update(dict.fromkeys(rec.all_load_balancer_ips, node))
        return out

    @staticmethod
    def announcer(cluster: ClusterContext) -> NodeContext:
        first_rack = cluster.spec.racks[0].name
        return next((n for n in cluster.nodes.values() if n.rack == first_rack),
                    next(iter(cluster.nodes.values())))
