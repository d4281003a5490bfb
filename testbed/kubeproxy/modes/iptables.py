"""kube-proxy's iptables mode: the nat and filter tables a node gets for the cluster's Services.

The chain structure and names are kube-proxy's own (pkg/proxy/iptables): KUBE-SERVICES matches
each ClusterIP and port and jumps to KUBE-SVC-<hash>, which picks an endpoint with the
statistic match (probability 1/n, then 1/(n-1), ... so each is equally likely) and jumps to
KUBE-SEP-<hash>, which DNATs to it. Chain hashes are base32(sha256(...))[:16] as kube-proxy
computes them. Traffic to a ClusterIP from outside the pod CIDR, and a pod reaching itself
through its Service (hairpin), are marked in KUBE-MARK-MASQ and masqueraded in
KUBE-POSTROUTING. NodePorts (also on 127.0.0.1, as kube-proxy's localhost NodePorts), external
IPs and load-balancer addresses go through KUBE-EXT-<hash>; a traffic policy Local picks from
the node's own endpoints in KUBE-SVL-<hash> (externalTrafficPolicy Local keeps the client's
address); loadBalancerSourceRanges are KUBE-FW-<hash>. sessionAffinity ClientIP uses the
recent match with the Service's timeout (kube-proxy's default 10800 s).

The filter table says no where the nat table has nothing: KUBE-SERVICES REJECTs a ClusterIP
with no endpoints (the client is refused at once), KUBE-EXTERNAL-SERVICES REJECTs or DROPs
external traffic with no (local) endpoint, KUBE-PROXY-FIREWALL drops what a source range kept
out, KUBE-NODEPORTS accepts health-check node ports, KUBE-FORWARD lets Service traffic be
forwarded, KUBE-FIREWALL blocks martian traffic to 127.0.0.0/8.

ruleset() is pure (services and endpoints in, the node's tables out); restore_input() turns
it into iptables-restore input. Applied with --noflush, that replaces the chains it declares and
leaves every other chain alone, which kube-proxy's partial sync (1.27+, MinimizeIPTablesRestore)
builds on: the filter table and the top-level nat chains are written whole on every sync, a
Service's own chains only when they changed, chains that went away are deleted; a node's first
sync is full. One deviation: kube-proxy counts dropped invalid and accepted localhost packets
with `-m nfacct` where the kernel has it; these rules carry no nfacct match.

In a dual-stack cluster the IPv6 proxier writes the same chains with ip6tables (the same
names: a chain's hash does not depend on the family, an endpoint's does, as "[ip]:port"), with
/128 host matches and no localhost NodePorts or martian rule, which kube-proxy keeps to IPv4.
"""
import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import CommandError
from testbed.kubeproxy.applier import ProxyApplier, hook
from testbed.kubeproxy.modes import register
from testbed.kubeproxy.types import (
    MASQ_MARK,
    ServicePort,
    filter_comment,
    firewall_sources,
    host_port,
    plan,
)
from testbed.manifests.families import IPV4, IPV6
from testbed.model.context import NodeContext

NEW = "-m conntrack --ctstate NEW"
BASE_JUMPS = [  # (table, built-in chain, rule): kube-proxy's hooks into the built-in chains
    ("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "POSTROUTING",
     '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),
    ("filter", "INPUT",
     f'{NEW} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),
    ("filter", "INPUT",
     '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS'),
    ("filter", "INPUT", f'{NEW} -m comment --comment "kubernetes externally-visible service '
     'portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "INPUT", "-j KUBE-FIREWALL"),
    ("filter", "FORWARD",
     f'{NEW} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),
    ("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("filter", "FORWARD",
     f'{NEW} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("filter", "FORWARD", f'{NEW} -m comment --comment "kubernetes externally-visible service '
     'portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "OUTPUT",
     f'{NEW} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),
    ("filter", "OUTPUT",
     f'{NEW} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("filter", "OUTPUT", "-j KUBE-FIREWALL"),
]
CANARY = "KUBE-PROXY-CANARY"  # an empty chain per table: kube-proxy resyncs when it vanishes
CANARY_TABLES = ("mangle", "nat", "filter")


def _hash(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(sp: ServicePort) -> str:
    return "KUBE-SVC-" + _hash(sp.id + sp.protocol)


def svl_chain(sp: ServicePort) -> str:
    return "KUBE-SVL-" + _hash(sp.id + sp.protocol)


def ext_chain(sp: ServicePort) -> str:
    return "KUBE-EXT-" + _hash(sp.id + sp.protocol)


def fw_chain(sp: ServicePort) -> str:
    return "KUBE-FW-" + _hash(sp.id + sp.protocol)


def sep_chain(sp: ServicePort, endpoint: tuple) -> str:
    return "KUBE-SEP-" + _hash(sp.id + sp.protocol + host_port(endpoint[0], endpoint[1]))


def _comment(text):
    return f'-m comment --comment "{text}"'


FORWARD_RULES = (  # KUBE-FORWARD, which the IPVS mode writes too
    "-m conntrack --ctstate INVALID -j DROP",
    f'{_comment("kubernetes forwarding rules")} -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT',
    f'{_comment("kubernetes forwarding conntrack rule")} '
    "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
)
TOP_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
FILTER_CHAINS = ("KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL",
                 "KUBE-FORWARD", "KUBE-PROXY-FIREWALL")


@dataclass
class Tables:
    """A node's rules: {chain: its rules ("-A CHAIN ...")} of the filter and the nat table."""
    filter: dict = field(default_factory=lambda: {c: [] for c in FILTER_CHAINS})
    nat: dict = field(default_factory=lambda: {c: [] for c in TOP_CHAINS})

    def add(self, table: str, chain: str, rule: str) -> None:
        getattr(self, table).setdefault(chain, []).append(f"-A {chain} {rule}")


def ruleset(service_ports: list[ServicePort], pod_cidr: str, node: str = "", node_ip: str = "",
            zone: str = "", family: str = IPV4) -> Tables:
    """The filter and nat rules of node `node` (underlay address `node_ip`) for these
    service ports of one IP family, the top-level chains first."""
    t = Tables()
    t.add("nat", "KUBE-POSTROUTING", f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN")
    t.add("nat", "KUBE-POSTROUTING", f"-j MARK --xor-mark {MASQ_MARK}")
    t.add("nat", "KUBE-POSTROUTING", f"{_comment('kubernetes service traffic requiring SNAT')} "
          "-j MASQUERADE --random-fully")
    t.add("nat", "KUBE-MARK-MASQ", f"-j MARK --or-mark {MASQ_MARK}")
    for sp in sorted(service_ports, key=lambda s: (s.id, s.protocol)):
        _service(t, sp, plan(sp, node, zone), pod_cidr, node_ip, family)
    last = _comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
    t.add("nat", "KUBE-SERVICES", f"{last} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    if family == IPV4:  # localhost NodePorts are IPv4's only, and so is this rule
        t.add("filter", "KUBE-FIREWALL", f'{_comment("block incoming localnet connections")} '
              "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate "
              "RELATED,ESTABLISHED,DNAT -j DROP")
    for rule in FORWARD_RULES:
        t.add("filter", "KUBE-FORWARD", rule)
    return t


HOST_BITS = {IPV4: 32, IPV6: 128}
RECENT_MASK = {IPV4: "255.255.255.255", IPV6: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}


def _service(t, sp, p, pod_cidr, node_ip, family=IPV4):
    """One service port's rules, in the order kube-proxy's syncProxyRules writes them."""
    host = HOST_BITS[family]
    proto = f"-p {sp.protocol} -m {sp.protocol}"
    svc, svl, ext, fw = svc_chain(sp), svl_chain(sp), ext_chain(sp), fw_chain(sp)
    internal = svl if sp.internal_local else svc
    external_policy = svl if sp.external_local else svc
    external = ext if sp.externally_accessible else external_policy
    uses_fw = p.has_endpoints and bool(sp.load_balancer_ips) and bool(sp.source_ranges)
    to_lb = fw if uses_fw else external
    cluster_ip = f"-d {sp.cluster_ip}/{host} {proto} --dport {sp.port}"
    if p.has_internal:
        t.add("nat", "KUBE-SERVICES", f"{cluster_ip} {_comment(sp.id + ' cluster IP')} "
              f"-j {internal}")
    else:
        t.add("filter", "KUBE-SERVICES", f"{cluster_ip} "
              f"{_comment(filter_comment(sp, p.internal_filter))} -j {p.internal_filter}")
    for ip in sp.external_ips:
        to = f"-d {ip}/{host} {proto} --dport {sp.port}"
        if p.has_endpoints:
            t.add("nat", "KUBE-SERVICES", f"{to} {_comment(sp.id + ' external IP')} "
                  f"-j {external}")
        if not p.has_external:
            t.add("filter", "KUBE-EXTERNAL-SERVICES", f"{to} "
                  f"{_comment(filter_comment(sp, p.external_filter))} -j {p.external_filter}")
    for ip in sp.load_balancer_ips:
        to = f"-d {ip}/{host} {proto} --dport {sp.port}"
        if p.has_endpoints:
            t.add("nat", "KUBE-SERVICES", f"{to} {_comment(sp.id + ' loadbalancer IP')} "
                  f"-j {to_lb}")
        if uses_fw:
            t.add("filter", "KUBE-PROXY-FIREWALL", f"{to} "
                  f"{_comment(f'{sp.id} traffic not accepted by {fw}')} -j DROP")
    if not p.has_external:
        for ip in sp.load_balancer_ips:
            t.add("filter", "KUBE-EXTERNAL-SERVICES", f"-d {ip}/{host} {proto} --dport {sp.port} "
                  f"{_comment(filter_comment(sp, p.external_filter))} -j {p.external_filter}")
    if sp.node_port:
        if p.has_endpoints and family == IPV4:  # localhost NodePorts: IPv4 only
            t.add("nat", "KUBE-NODEPORTS", f"-d 127.0.0.0/8 {proto} --dport {sp.node_port} "
                  f"{_comment(sp.id)} -j {external}")
        if p.has_endpoints:
            t.add("nat", "KUBE-NODEPORTS", f"{proto} --dport {sp.node_port} {_comment(sp.id)} "
                  f"-j {external}")
        if not p.has_external:
            t.add("filter", "KUBE-EXTERNAL-SERVICES",
                  f"{_comment(filter_comment(sp, p.external_filter))} -m addrtype "
                  f"--dst-type LOCAL {proto} --dport {sp.node_port} -j {p.external_filter}")
    if sp.health_check_node_port:
        t.add("filter", "KUBE-NODEPORTS", f"-p tcp {_comment(sp.id + ' health check node port')}"
              f" -m tcp --dport {sp.health_check_node_port} -j ACCEPT")
    if p.has_internal:
        t.add("nat", internal, f"! -s {pod_cidr} {cluster_ip} "
              f"{_comment(sp.id + ' cluster IP')} -j KUBE-MARK-MASQ")
    if sp.externally_accessible and p.has_endpoints:
        t.nat.setdefault(ext, [])
        if not sp.external_local:
            masq_why = _comment(f"masquerade traffic for {sp.id} external destinations")
            t.add("nat", ext, f"{masq_why} -j KUBE-MARK-MASQ")
        else:
            cluster = svc if p.cluster else svl  # both policies Local: no cluster chain
            t.add("nat", ext, f"-s {pod_cidr} "
                  f"{_comment(f'pod traffic for {sp.id} external destinations')} -j {cluster}")
            local = "-m addrtype --src-type LOCAL"
            t.add("nat", ext, _comment(f"masquerade LOCAL traffic for {sp.id} external "
                                       f"destinations") + f" {local} -j KUBE-MARK-MASQ")
            t.add("nat", ext, _comment(f"route LOCAL traffic for {sp.id} external "
                                       f"destinations") + f" {local} -j {cluster}")
        if p.has_external:
            t.add("nat", ext, f"-j {external_policy}")
    if uses_fw:
        t.nat[fw] = []
        for cidr in firewall_sources(sp, node_ip):
            cidr = cidr if "/" in cidr else f"{cidr}/{host}"
            t.add("nat", fw, f"-s {cidr} {_comment(sp.id + ' loadbalancer IP')} -j {external}")
        t.add("nat", fw, _comment(f"other traffic to {sp.id} will be dropped by "
                                  "KUBE-PROXY-FIREWALL"))
    if p.cluster:
        _endpoint_rules(t, sp, svc, p.cluster, family)
    if p.local:
        _endpoint_rules(t, sp, svl, p.local, family)
    for ep in p.endpoints:
        sep = sep_chain(sp, ep)
        t.nat[sep] = []
        t.add("nat", sep, f"-s {ep.ip}/{host} {_comment(sp.id)} -j KUBE-MARK-MASQ")
        remember = (f" -m recent --name {sep} --mask {RECENT_MASK[family]} --rsource --set"
                    if sp.affinity else "")
        t.add("nat", sep, f"{proto} {_comment(sp.id)}{remember} -j DNAT --to-destination {ep}")


def _endpoint_rules(t, sp, chain, endpoints, family=IPV4):
    """A policy chain's picks: affinity first, then one endpoint at random."""
    t.nat.setdefault(chain, [])
    seps = [(ep, sep_chain(sp, ep)) for ep in endpoints]
    if sp.affinity:
        for ep, sep in seps:
            t.add("nat", chain, f"{_comment(f'{sp.id} -> {ep}')} -m recent --name {sep} "
                  f"--mask {RECENT_MASK[family]} --rsource --rcheck "
                  f"--seconds {sp.affinity_timeout} "
                  f"--reap -j {sep}")
    for i, (ep, sep) in enumerate(seps):
        left = len(seps) - i
        pick = "" if left == 1 else f" -m statistic --mode random --probability {1 / left:0.10f}"
        t.add("nat", chain, f"{_comment(f'{sp.id} -> {ep}')}{pick} -j {sep}")


def restore_input(tables: Tables, held: Tables | None = None, partial: bool = False) -> str:
    """iptables-restore input that brings a node holding `held` (None: not known) to `tables`:
    the filter table whole, then the nat table. nat chains `held` has and `tables` lacks are
    deleted. partial: as kube-proxy's partial sync, a Service's nat chains are written only
    when they differ from what is held."""
    lines = ["*filter"] + [f":{c} - [0:0]" for c in tables.filter]
    for rules in tables.filter.values():
        lines += rules
    lines.append("COMMIT")
    chains, old = tables.nat, held.nat if held else {}
    written = [c for c in chains if not partial or c in TOP_CHAINS or old.get(c) != chains[c]]
    gone = [c for c in old if c not in chains]
    lines += ["*nat"] + [f":{c} - [0:0]" for c in written + gone]
    for chain in written:
        lines += chains[chain]
    lines += [f"-X {c}" for c in gone] + ["COMMIT", ""]
    return "\n".join(lines)


@register
class IptablesProxies(ProxyApplier):
    """kube-proxy's iptables mode: iptables-restore --noflush of the filter and nat chains it
    owns; after a node's first sync, partially (the filter table, the top-level nat chains and
    what changed), falling back to a full restore if a partial one fails, as kube-proxy does."""

    name = "iptables"
    needs = {"iptables": "iptables with the kernel's nat table"}
    ip_families = (IPV4, IPV6)

    @classmethod
    def describe(cls, sp: ServicePort) -> list[str]:
        return cls.chain_lines(sp, svc_chain(sp),
                               [f"{sep_chain(sp, ep)} ({ep})" for ep in sp.endpoints],
                               svl_chain(sp), ext_chain(sp), fw_chain(sp))

    def render(self, ports: list[ServicePort], pod_cidr: str, node: NodeContext) -> Any:
        node_ip = node.ip_v6 if self.family == IPV6 else node.ip
        return ruleset(ports, pod_cidr, node.name, str(node_ip.ip) if node_ip else "",
                       self.zones.get(node.name, ""), self.family)

    def prepare(self, node: NodeContext) -> None:
        if self.family == IPV4:
            # localhost NodePorts: 127.0.0.1:<nodePort> is DNATed to a pod, which the kernel
            # routes only with route_localnet (kube-proxy sets it; KUBE-FIREWALL drops
            # martians)
            node.ns.run("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
        for table in CANARY_TABLES:
            node.ns.run(self.tool, "-w", "-t", table, "-N", CANARY)

    def apply(self, node: NodeContext, rendered: Any) -> None:
        held = self.last.get(node.name)
        restore = f"{self.tool}-restore"
        try:
            node.ns.run(restore, "-w", "--noflush",
                        input=restore_input(rendered, held, partial=held is not None))
        except CommandError:
            if held is None:
                raise
            node.ns.run(restore, "-w", "--noflush", input=restore_input(rendered, held))
        if node.name not in self.hooked:
            hook(node, BASE_JUMPS, self.tool)
        self.last[node.name] = rendered
