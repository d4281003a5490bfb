"""kube-proxy's userspace mode (removed from kube-proxy in 1.26, still what the guides teach
first): kube-proxy itself is the proxy. For every Service port it listens on a port of its
own (the proxy port, chosen by the kernel), and iptables rules send the Service's traffic
there; it accepts the connection, picks an endpoint round-robin (or the client's, with
sessionAffinity ClientIP) and copies bytes both ways over a second connection of its own,
so the endpoint sees the node's address as the client.

The rules are the old proxier's (pkg/proxy/userspace): nat chains KUBE-PORTALS-CONTAINER
(from PREROUTING: traffic from pods and other hosts) and KUBE-PORTALS-HOST (from OUTPUT: the
node's own) match a ClusterIP, external IP or load-balancer address and port;
KUBE-NODEPORT-CONTAINER and KUBE-NODEPORT-HOST match a NodePort on any local address; the
filter chain KUBE-NODEPORT-NON-LOCAL accepts new connections to the proxy ports. The proxy
here listens on the node's address (kube-proxy's --bind-address), so every rule DNATs to
<node IP>:<proxy port>; with the default 0.0.0.0 kube-proxy used REDIRECT for container
traffic, which needs an address on the interface a packet came in by (Calico's cali*
interfaces have none).

render() is pure: service ports, the node's address and the proxy ports in, the chains
out (iptables-restore --noflush input, every chain whole).
"""
import os
import shlex
from typing import Any

from testbed.host import rpc
from testbed.kubeproxy.applier import AGENT_SOCKET, ProxyApplier
from testbed.kubeproxy.modes import register
from testbed.kubeproxy.types import ServicePort, plan
from testbed.model.context import ClusterContext, NodeContext

NAT_CHAINS = ("KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST", "KUBE-NODEPORT-CONTAINER",
              "KUBE-NODEPORT-HOST")
FILTER_CHAINS = ("KUBE-NODEPORT-NON-LOCAL",)
PORTALS_FIRST = '-m comment --comment "handle ClusterIPs; NOTE: this must be before the ' \
    'NodePort rules"'
NODEPORTS_LAST = '-m addrtype --dst-type LOCAL -m comment --comment "handle service ' \
    'NodePorts; NOTE: this must be the last rule in the chain"'
# (table, chain, position, rule): "first" rules are inserted at the top, "last" appended
HOOKS = [
    ("nat", "PREROUTING", "first", f"{PORTALS_FIRST} -j KUBE-PORTALS-CONTAINER"),
    ("nat", "OUTPUT", "first", f"{PORTALS_FIRST} -j KUBE-PORTALS-HOST"),
    ("nat", "PREROUTING", "last", f"{NODEPORTS_LAST} -j KUBE-NODEPORT-CONTAINER"),
    ("nat", "OUTPUT", "last", f"{NODEPORTS_LAST} -j KUBE-NODEPORT-HOST"),
    ("filter", "INPUT", "first", '-m comment --comment "Ensure that non-local NodePort traffic '
     'can flow" -j KUBE-NODEPORT-NON-LOCAL'),
]


EXTERNAL = "#external"  # a port's second portal: NodePort and LB traffic under a policy Local


def key(sp: ServicePort) -> str:
    """What the proxy and the rules call a service port: kube-proxy's ServicePortName and
    protocol."""
    return f"{sp.id}/{sp.protocol}"


def portals(sp: ServicePort, node: str = "", zone: str = "") -> dict:
    """{name: what the proxy of `node` needs to serve it} for one service port: one portal,
    and a second for external traffic when externalTrafficPolicy is Local. Traffic policies
    and topology hints choose the endpoints as in the other modes; the client's address is
    lost all the same (the proxy connects from the node)."""
    p = plan(sp, node, zone)

    def spec(endpoints):
        return {"protocol": sp.protocol, "endpoints": [[ep.ip, ep.port] for ep in endpoints],
                "affinity": sp.affinity_timeout if sp.affinity else 0}
    out = {key(sp): spec(p.local if sp.internal_local else p.cluster)}
    if sp.externally_accessible and sp.external_local:
        out[key(sp) + EXTERNAL] = spec(p.local)
    return out


def render(service_ports: list[ServicePort], node_ip: str, proxy_ports: dict) -> str:
    """iptables-restore input (both tables, every chain whole) sending each service port that
    has a proxy port to <node_ip>:<proxy port>."""
    nat = {c: [] for c in NAT_CHAINS}
    filt = {c: [] for c in FILTER_CHAINS}
    for sp in sorted(service_ports, key=lambda s: (s.id, s.protocol)):
        proxy_port = proxy_ports.get(key(sp))
        if proxy_port is None:
            continue
        external_port = proxy_ports.get(key(sp) + EXTERNAL, proxy_port)
        match = f'-p {sp.protocol} -m comment --comment "{sp.id}" -m {sp.protocol}'
        for ip, port in ((sp.cluster_ip, proxy_port),
                         *((ip, external_port) for ip in sp.external_ips + sp.load_balancer_ips)):
            for chain in ("KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST"):
                nat[chain].append(f"-A {chain} -d {ip}/32 {match} --dport {sp.port} "
                                  f"-j DNAT --to-destination {node_ip}:{port}")
        if sp.node_port:
            for chain in ("KUBE-NODEPORT-CONTAINER", "KUBE-NODEPORT-HOST"):
                nat[chain].append(f"-A {chain} {match} --dport {sp.node_port} "
                                  f"-j DNAT --to-destination {node_ip}:{external_port}")
            filt["KUBE-NODEPORT-NON-LOCAL"].append(
                f"-A KUBE-NODEPORT-NON-LOCAL {match} --dport {external_port} -m state --state "
                "NEW -j ACCEPT")
    lines = []
    for table, chains in (("filter", filt), ("nat", nat)):
        lines += [f"*{table}"] + [f":{c} - [0:0]" for c in chains]
        for rules in chains.values():
            lines += rules
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@register
class UserspaceProxies(ProxyApplier):
    """kube-proxy's userspace mode: the node's kube-proxy@NODE proxies every Service port
    itself (proxier.py); iptables rules send the Service's addresses and NodePorts to its
    proxy ports (userspace.py)."""

    name = "userspace"
    needs = {"iptables": "iptables with the kernel's nat table"}

    @classmethod
    def describe(cls, sp: ServicePort) -> list[str]:
        return [cls.heading(sp), "  KUBE-PORTALS-CONTAINER, KUBE-PORTALS-HOST -> the proxy port "
                "of kube-proxy@<node> on each node (`testbed exec NODE -- iptables-save`)"]

    def render(self, ports: list[ServicePort], pod_cidr: str, node: NodeContext) -> Any:
        return [sp for sp in ports if sp.protocol in ("tcp", "udp")]  # as the old proxier

    def agent_config(self, node: NodeContext, ports: list[ServicePort]) -> dict:
        zone = self.zones.get(node.name, "")
        found = {}
        for sp in ports:
            if sp.protocol in ("tcp", "udp"):
                found.update(portals(sp, node.name, zone))
        return {"listen": str(node.ip.ip), "portals": found}

    def apply(self, node: NodeContext, ports: Any) -> None:
        text = render(ports, str(node.ip.ip), self.proxy_ports.get(node.name, {}))
        node.ns.run("iptables-restore", "-w", "--noflush", input=text)
        if node.name not in self.hooked:
            for table, chain, where, rule in HOOKS:
                position = ["-I", chain, "1"] if where == "first" else ["-A", chain]
                node.ns.run("iptables", "-w", "-t", table, *position, *shlex.split(rule))
        self.last[node.name] = ports

    def recall(self, cluster: ClusterContext) -> None:
        super().recall(cluster)
        for node in cluster.nodes.values():  # the ports its proxy listens on, as it says
            stats = rpc.request(os.path.join(node.dir, AGENT_SOCKET), {"stats": True})
            self.proxy_ports[node.name] = {name: p["port"] for name, p in
                                           stats.get("portals", {}).items()}
