"""kube-proxy's nftables mode: table `ip kube-proxy` of a node (and `ip6 kube-proxy` in a
dual-stack cluster, written by the IPv6 proxier with the same chains), and the transaction that
moves a node from one set of Services to the next.

Names and structure are kube-proxy's own (pkg/proxy/nftables): base chains nat-prerouting and
nat-output jump to `services`, which looks the destination up in the verdict map service-ips
(address . protocol . port) and, for the addresses in the set nodeport-ips, service-nodeports;
a hit goes to service-<HASH>-<ns>/<svc>/<proto>/<port>, which picks an endpoint with `numgen
random mod n vmap` and goes to endpoint-<HASH>-...__<ip>/<port>, which DNATs. A traffic
policy Local picks from the node's own endpoints in local-<HASH>-...; external-<HASH>-...
takes NodePort, external-IP and LoadBalancer traffic (masquerading it, or with
externalTrafficPolicy Local keeping the client's address); nat-postrouting masquerades marked
packets. ClientIP affinity keeps the client's address in a timeout set per endpoint.

The filter side says no where nothing else would: filter-input/forward/output look the
destination up in no-endpoint-services and no-endpoint-nodeports (reject-chain for a Service
with no endpoints, drop where a policy Local finds none on the node), cluster-ips-check rejects
a ClusterIP's unserved ports and drops unallocated ClusterIPs, and firewall-check (before DNAT)
sends load-balancer addresses with loadBalancerSourceRanges to their firewall-<HASH>-... chain.

Unlike the iptables mode, one packet's lookup costs the same with 5 or 5,000 Services (a map,
not a rule list), and a change is a transaction of the chains and elements that changed
(kube-proxy's partial sync), not a rewrite of the table. render() is pure; transaction() diffs
two renders into `nft -f` input.
"""
import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from testbed.kubeproxy.applier import ProxyApplier
from testbed.kubeproxy.modes import register
from testbed.kubeproxy.types import MASQ_MARK, ServicePort, firewall_sources, plan
from testbed.manifests.families import IPV4, IPV6, SERVICE_CIDRS
from testbed.model.context import NodeContext

TABLES = {IPV4: "ip kube-proxy", IPV6: "ip6 kube-proxy"}
TABLE = TABLES[IPV4]
MATCH = {IPV4: "ip", IPV6: "ip6"}  # the address match of each family's table
ADDRESS_TYPE = {IPV4: "ipv4_addr", IPV6: "ipv6_addr"}
CHAINS = {  # kube-proxy's fixed chains, name -> declaration (base chains hook in)
    "cluster-ips-check": "",
    "filter-prerouting-pre-dnat": "{ type filter hook prerouting priority -110 ; }",
    "filter-output-pre-dnat": "{ type filter hook output priority -110 ; }",
    "filter-forward": "{ type filter hook forward priority 0 ; }",
    "filter-input": "{ type filter hook input priority 0 ; }",
    "filter-output": "{ type filter hook output priority 0 ; }",
    "firewall-check": "",
    "mark-for-masquerade": "",
    "masquerading": "",
    "nat-output": "{ type nat hook output priority -100 ; }",
    "nat-postrouting": "{ type nat hook postrouting priority 100 ; }",
    "nat-prerouting": "{ type nat hook prerouting priority -100 ; }",
    "nodeport-endpoints-check": "",
    "reject-chain": '{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }',
    "services": "",
    "service-endpoints-check": "",
}
SETS = {
    "cluster-ips": '{ type ipv4_addr ; comment "Active ClusterIPs" ; }',
    "nodeport-ips": '{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }',
}
ADDRESS_PORT = "type ipv4_addr . inet_proto . inet_service : verdict"
MAPS = {
    "firewall-ips": f'{{ {ADDRESS_PORT} ; comment "destinations that are subject to '
                    'LoadBalancerSourceRanges" ; }',
    "no-endpoint-nodeports": '{ type inet_proto . inet_service : verdict ; comment "vmap to '
                             'drop or reject packets to service nodeports with no endpoints" ; }',
    "no-endpoint-services": f'{{ {ADDRESS_PORT} ; comment "vmap to drop or reject packets to '
                            'services with no endpoints" ; }',
    "service-ips": f'{{ {ADDRESS_PORT} ; comment "ClusterIP, ExternalIP and LoadBalancer IP '
                   'traffic" ; }',
    "service-nodeports": '{ type inet_proto . inet_service : verdict ; '
                         'comment "NodePort traffic" ; }',
}


def _declaration(text: str, family: str) -> str:
    """A set's or map's declaration for a family's table (its address type)."""
    return text.replace("ipv4_addr", ADDRESS_TYPE[family])


def _affinity_set(timeout, family=IPV4):
    return f"{{ type {ADDRESS_TYPE[family]} ; flags dynamic,timeout ; timeout {timeout}s ; }}"


@dataclass
class Ruleset:
    """One node's render: chains (name -> rules), map elements (map -> {key: (comment,
    verdict)}), elements of the two address sets, and affinity sets (name -> timeout)."""
    chains: dict = field(default_factory=dict)
    elements: dict = field(default_factory=lambda: {m: {} for m in MAPS})
    set_elements: dict = field(default_factory=lambda: {s: set() for s in SETS})
    sets: dict = field(default_factory=dict)
    family: str = IPV4  # whose table: ip kube-proxy, or ip6 kube-proxy

    def element(self, mapname: str, key: str, verdict: str, comment: str = "") -> None:
        self.elements[mapname][key] = (comment, verdict)


def _base(name):
    """kube-proxy's hashAndTruncate: 8 base32 characters of sha256, a dash, the name."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    return f"{digest[:8]}-{name}"


def port_name(sp: ServicePort) -> str:
    """<ns>/<svc>/<proto>/<port name>, the readable part of the chain names."""
    return f"{sp.namespace}/{sp.name}/{sp.protocol}/{sp.port_name}"


def service_chain(sp: ServicePort) -> str:
    return "service-" + _base(port_name(sp))


def local_chain(sp: ServicePort) -> str:
    return "local-" + _base(port_name(sp))


def external_chain(sp: ServicePort) -> str:
    return "external-" + _base(port_name(sp))


def firewall_chain(sp: ServicePort) -> str:
    return "firewall-" + _base(port_name(sp))


def endpoint_base(sp: ServicePort, endpoint: tuple) -> str:
    """An IPv6 endpoint's colons become dots, as kube-proxy writes them: no chain name may
    hold a colon."""
    return _base(f"{port_name(sp)}__{str(endpoint[0]).replace(':', '.')}/{endpoint[1]}")


def _fixed_chains(service_cidr, match="ip"):
    new = "ct state new jump"
    return {
        "cluster-ips-check": [
            f'{match} daddr @cluster-ips reject comment "Reject traffic to invalid ports of '
            'ClusterIPs"',
            f'{match} daddr {{ {service_cidr} }} drop comment "Drop traffic to unallocated '
            'ClusterIPs"'],
        "filter-prerouting-pre-dnat": [f"{new} firewall-check"],
        "filter-output-pre-dnat": [f"{new} firewall-check"],
        "filter-forward": [f"{new} service-endpoints-check", f"{new} cluster-ips-check"],
        "filter-input": [f"{new} nodeport-endpoints-check", f"{new} service-endpoints-check"],
        "filter-output": [f"{new} service-endpoints-check", f"{new} cluster-ips-check"],
        "firewall-check": [f"{match} daddr . meta l4proto . th dport vmap @firewall-ips"],
        "mark-for-masquerade": [f"mark set mark or {MASQ_MARK}"],
        "masquerading": [f"mark and {MASQ_MARK} == 0 return", f"mark set mark xor {MASQ_MARK}",
                         "masquerade fully-random"],
        "nat-output": ["jump services"],
        "nat-postrouting": ["jump masquerading"],
        "nat-prerouting": ["jump services"],
        "nodeport-endpoints-check": [
            f"{match} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"],
        "reject-chain": ["reject"],
        "services": [f"{match} daddr . meta l4proto . th dport vmap @service-ips",
                     f"{match} daddr @nodeport-ips meta l4proto . th dport vmap "
                     "@service-nodeports"],
        "service-endpoints-check": [
            f"{match} daddr . meta l4proto . th dport vmap @no-endpoint-services"],
    }


def render(service_ports: list[ServicePort], pod_cidr: str, node: str = "", node_ip: str = "",
           service_cidr: str = "", zone: str = "", family: str = IPV4) -> "Ruleset":
    """The table of node `node` (underlay address `node_ip`, where NodePorts answer) for
    the service ports of one family."""
    rs = Ruleset(family=family)
    rs.chains.update(_fixed_chains(service_cidr or str(SERVICE_CIDRS[family]), MATCH[family]))
    if node_ip:
        rs.set_elements["nodeport-ips"].add(node_ip)
    for sp in sorted(service_ports, key=lambda s: (s.id, s.protocol)):
        _service(rs, sp, plan(sp, node, zone), pod_cidr, node_ip, MATCH[family])
    return rs


def _verdict(word):
    return "goto reject-chain" if word == "REJECT" else "drop"


def _service(rs, sp, p, pod_cidr, node_ip, match="ip"):
    """One service port's chains and map elements, as kube-proxy's syncProxyRules writes
    them."""
    svc, local, ext, fw = service_chain(sp), local_chain(sp), external_chain(sp), \
        firewall_chain(sp)
    internal = local if sp.internal_local else svc
    external_policy = local if sp.external_local else svc
    external = ext if sp.externally_accessible else external_policy
    uses_fw = p.has_endpoints and bool(sp.load_balancer_ips) and bool(sp.source_ranges)
    key = f"{sp.protocol} . {sp.port}"
    rs.set_elements["cluster-ips"].add(sp.cluster_ip)
    if p.has_internal:
        rs.element("service-ips", f"{sp.cluster_ip} . {key}", f"goto {internal}")
    else:
        rs.element("no-endpoint-services", f"{sp.cluster_ip} . {key}",
                   _verdict(p.internal_filter), sp.id)
    for ip in sp.external_ips + sp.load_balancer_ips:
        if p.has_endpoints:
            rs.element("service-ips", f"{ip} . {key}", f"goto {external}")
        if not p.has_external:
            rs.element("no-endpoint-services", f"{ip} . {key}", _verdict(p.external_filter),
                       sp.id)
    if uses_fw:
        for ip in sp.load_balancer_ips:
            rs.element("firewall-ips", f"{ip} . {key}", f"goto {fw}")
    if sp.node_port:
        if p.has_endpoints:
            rs.element("service-nodeports", f"{sp.protocol} . {sp.node_port}", f"goto {external}")
        if not p.has_external:
            rs.element("no-endpoint-nodeports", f"{sp.protocol} . {sp.node_port}",
                       _verdict(p.external_filter), sp.id)
    if p.has_internal:
        rs.chains.setdefault(internal, []).append(
            f"{match} daddr {sp.cluster_ip} {match} saddr != {pod_cidr} jump mark-for-masquerade")
    if sp.externally_accessible and p.has_endpoints:
        if not sp.external_local:
            rules = ["jump mark-for-masquerade"]
        else:
            cluster = svc if p.cluster else local  # both policies Local: no cluster chain
            rules = [f'{match} saddr {pod_cidr} goto {cluster} comment "short-circuit pod '
                     'traffic"',
                     'fib saddr type local jump mark-for-masquerade comment "masquerade local '
                     'traffic"',
                     f'fib saddr type local goto {cluster} comment "short-circuit local traffic"']
        if p.has_external:
            rules.append(f"goto {external_policy}")
        rs.chains[ext] = rules
    if uses_fw:
        sources = firewall_sources(sp, node_ip)
        rs.chains[fw] = [f"{match} saddr != {{ {' , '.join(sources)} }} drop"]
    if p.cluster:
        _endpoint_picks(rs, sp, svc, p.cluster, match)
    if p.local:
        _endpoint_picks(rs, sp, local, p.local, match)
    for ep in p.endpoints:
        base = endpoint_base(sp, ep)
        rules = [f"{match} saddr {ep.ip} jump mark-for-masquerade",
                 f"meta l4proto {sp.protocol} dnat to {ep}"]
        if sp.affinity:
            rs.sets[f"affinity-{base}"] = sp.affinity_timeout
            rules.insert(1, f"update @affinity-{base} {{ {match} saddr }}")
        rs.chains[f"endpoint-{base}"] = rules


def _endpoint_picks(rs, sp, chain, endpoints, match="ip"):
    """A policy chain: affinity first, then one endpoint at random."""
    rules = rs.chains.setdefault(chain, [])
    bases = [endpoint_base(sp, ep) for ep in endpoints]
    if sp.affinity:
        rules += [f"{match} saddr @affinity-{base} goto endpoint-{base}" for base in bases]
    picks = " , ".join(f"{i} : goto endpoint-{base}" for i, base in enumerate(bases))
    rules.append(f"numgen random mod {len(bases)} vmap {{ {picks} }}")


def _element(table, mapname, key, value):
    comment, verdict = value
    said = f' comment "{comment}"' if comment else ""
    return f"add element {table} {mapname} {{ {key}{said} : {verdict} }}"


def transaction(old: "Ruleset | None", new: "Ruleset") -> str:
    """`nft -f` input moving a node from render `old` (None: nothing yet) to render `new`:
    new objects, rewritten chains, changed elements, then what went away."""
    lines = []
    table = TABLES[new.family]
    if old is None:
        old = Ruleset(family=new.family)
        lines.append(f'add table {table} {{ comment "rules for kube-proxy" ; }}')
        lines += [f"add set {table} {name} {_declaration(decl, new.family)}"
                  for name, decl in SETS.items()]
        lines += [f"add map {table} {name} {_declaration(decl, new.family)}"
                  for name, decl in MAPS.items()]
    for name in new.chains:
        if name not in old.chains:
            lines.append(f"add chain {table} {name} {CHAINS.get(name, '')}".rstrip())
    # a set's timeout cannot change in place: the chains using it let go, it is made anew
    remade = {name for name in new.sets if name in old.sets and old.sets[name] != new.sets[name]}
    users = [c for c, rules in old.chains.items() if any(f"@{n} " in r or r.endswith(f"@{n}")
                                                         for r in rules for n in remade)]
    lines += [f"flush chain {table} {name}" for name in users]
    lines += [f"delete set {table} {name}" for name in sorted(remade)]
    lines += [f"add set {table} {name} {_affinity_set(timeout, new.family)}"
              for name, timeout in sorted(new.sets.items())
              if name not in old.sets or name in remade]
    for name, rules in new.chains.items():
        if old.chains.get(name) != rules or name in users:
            if name in old.chains and name not in users:
                lines.append(f"flush chain {table} {name}")
            lines += [f"add rule {table} {name} {rule}" for rule in rules]
    for name in SETS:
        before, after = old.set_elements[name], new.set_elements[name]
        lines += [f"delete element {table} {name} {{ {e} }}" for e in sorted(before - after)]
        lines += [f"add element {table} {name} {{ {e} }}" for e in sorted(after - before)]
    for m in MAPS:
        before, after = old.elements[m], new.elements[m]
        lines += [f"delete element {table} {m} {{ {k} }}" for k, v in before.items()
                  if after.get(k) != v]
        lines += [_element(table, m, k, v) for k, v in after.items() if before.get(k) != v]
    stale = [name for name in old.chains if name not in new.chains]
    lines += [f"flush chain {table} {name}" for name in stale]
    lines += [f"delete set {table} {name}" for name in sorted(set(old.sets) - set(new.sets))]
    lines += [f"delete chain {table} {name}" for name in stale]
    return "\n".join(lines) + "\n" if lines else ""


@register
class NftablesProxies(ProxyApplier):
    """kube-proxy's nftables mode: one nft transaction per node of what changed."""

    name = "nftables"
    needs = {"nftables": "the kernel's nftables"}
    ip_families = (IPV4, IPV6)

    @classmethod
    def describe(cls, sp: ServicePort) -> list[str]:
        return cls.chain_lines(sp, service_chain(sp),
                               [f"endpoint-{endpoint_base(sp, ep)}" for ep in sp.endpoints],
                               local_chain(sp), external_chain(sp), firewall_chain(sp))

    def render(self, ports: list[ServicePort], pod_cidr: str, node: NodeContext) -> Any:
        node_ip = node.ip_v6 if self.family == IPV6 else node.ip
        return render(ports, pod_cidr, node.name, str(node_ip.ip) if node_ip else "",
                      zone=self.zones.get(node.name, ""), family=self.family)

    def apply(self, node: NodeContext, rendered: Any) -> None:
        text = transaction(self.last.get(node.name), rendered)
        if text:
            node.ns.run("nft", "-f", "-", input=text)
        self.last[node.name] = rendered
