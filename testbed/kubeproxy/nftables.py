"""kube-proxy's nftables mode: table `ip kube-proxy` of a node, and the transaction that moves
a node from one set of Services to the next.

Names and structure are kube-proxy's own (pkg/proxy/nftables): base chains nat-prerouting and
nat-output jump to `services`, which looks the destination up in the verdict map service-ips
(address . protocol . port) and, for the node's own addresses, service-nodeports; a hit goes
to service-<HASH>-<ns>/<svc>/<proto>/<port>, which picks an endpoint with `numgen random mod
n vmap` and goes to endpoint-<HASH>-...__<ip>/<port>, which DNATs. external-<HASH>-... marks
NodePort and LoadBalancer traffic for masquerade; nat-postrouting masquerades marked packets.
ClientIP affinity keeps the client's address in a timeout set per endpoint.

Unlike the iptables mode, one packet's lookup costs the same with 5 or 5,000 Services (a map,
not a rule list), and a change is a transaction of the chains and map elements that changed
(kube-proxy's partial sync), not a rewrite of the table. render() is pure; transaction() diffs
two renders into `nft -f` input.
"""
import base64
import hashlib
from dataclasses import dataclass, field

from testbed.kubeproxy.types import AFFINITY_TIMEOUT_S, MASQ_MARK

TABLE = "ip kube-proxy"
BASE_CHAINS = {  # name -> declaration
    "nat-prerouting": "{ type nat hook prerouting priority dstnat ; }",
    "nat-output": "{ type nat hook output priority -100 ; }",  # dstnat; this nft takes
    # that keyword for prerouting only
    "nat-postrouting": "{ type nat hook postrouting priority srcnat ; }",
}
MAPS = {
    "service-ips": "{ type ipv4_addr . inet_proto . inet_service : verdict ; "
                   "comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }",
    "service-nodeports": "{ type inet_proto . inet_service : verdict ; "
                         "comment \"NodePort traffic\" ; }",
}
AFFINITY_SET = (f"{{ type ipv4_addr ; flags dynamic,timeout ; "
                f"timeout {AFFINITY_TIMEOUT_S}s ; }}")


@dataclass
class Ruleset:
    """One render: chains (name -> rules), map elements (map -> {key: verdict}) and
    affinity sets."""
    chains: dict = field(default_factory=dict)
    elements: dict = field(default_factory=lambda: {m: {} for m in MAPS})
    sets: set = field(default_factory=set)


def _base(name):
    """kube-proxy's hashAndTruncate: 8 base32 characters of sha256, a dash, the name."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    return f"{digest[:8]}-{name}"


def port_name(sp):
    """<ns>/<svc>/<proto>/<port name>, the readable part of the chain names."""
    return f"{sp.namespace}/{sp.name}/{sp.protocol}/{sp.port_name}"


def service_chain(sp):
    return "service-" + _base(port_name(sp))


def external_chain(sp):
    return "external-" + _base(port_name(sp))


def endpoint_base(sp, endpoint):
    ip, port = endpoint
    return _base(f"{port_name(sp)}__{ip}/{port}")


def render(service_ports, pod_cidr):
    rs = Ruleset()
    rs.chains.update({
        "nat-prerouting": ["jump services"],
        "nat-output": ["jump services"],
        "nat-postrouting": ["jump masquerading"],
        "services": ["ip daddr . meta l4proto . th dport vmap @service-ips",
                     "fib daddr type local ip daddr != 127.0.0.0/8 "
                     "meta l4proto . th dport vmap @service-nodeports"],
        "masquerading": [f"meta mark & {MASQ_MARK} == 0 return",
                         f"meta mark set meta mark ^ {MASQ_MARK}",
                         "masquerade fully-random"],
        "mark-for-masquerade": [f"meta mark set meta mark | {MASQ_MARK}"],
    })
    for sp in sorted(service_ports, key=lambda s: (s.id, s.protocol)):
        if not sp.endpoints:
            continue  # kube-proxy rejects these in its filter chains; here nothing answers
        svc = service_chain(sp)
        key = f"{sp.protocol} . {sp.port}"
        rs.elements["service-ips"][f"{sp.cluster_ip} . {key}"] = f"goto {svc}"
        rules = [f"ip daddr {sp.cluster_ip} {sp.protocol} dport {sp.port} "
                 f"ip saddr != {pod_cidr} jump mark-for-masquerade"]
        if sp.node_port or sp.external_ips:
            ext = external_chain(sp)
            rs.chains[ext] = ["jump mark-for-masquerade", f"goto {svc}"]
            if sp.node_port:
                rs.elements["service-nodeports"][f"{sp.protocol} . {sp.node_port}"] = \
                    f"goto {ext}"
            for ip in sp.external_ips:
                rs.elements["service-ips"][f"{ip} . {key}"] = f"goto {ext}"
        endpoints = [(ep, endpoint_base(sp, ep)) for ep in sp.endpoints]
        for (ip, port), base in endpoints:
            chain = f"endpoint-{base}"
            rs.chains[chain] = [f"ip saddr {ip} jump mark-for-masquerade",
                                f"meta l4proto {sp.protocol} dnat to {ip}:{port}"]
            if sp.affinity:
                rs.sets.add(f"affinity-{base}")
                rs.chains[chain].insert(1, f"update @affinity-{base} {{ ip saddr }}")
                rules.append(f"ip saddr @affinity-{base} goto {chain}")
        picks = ", ".join(f"{i} : goto endpoint-{base}" for i, (_, base) in enumerate(endpoints))
        rules.append(f"numgen random mod {len(endpoints)} vmap {{ {picks} }}")
        rs.chains[svc] = rules
    return rs


def transaction(old, new):
    """`nft -f` input moving a node from render `old` (None: nothing yet) to render `new`:
    new objects, rewritten chains, changed map elements, then what went away."""
    old = old or Ruleset(chains={}, elements={m: {} for m in MAPS}, sets=set())
    lines = []
    if not old.chains:
        lines.append(f'add table {TABLE} {{ comment "rules for kube-proxy" ; }}')
        lines += [f"add map {TABLE} {name} {decl}" for name, decl in MAPS.items()]
    for name in new.chains:
        if name not in old.chains:
            lines.append(f"add chain {TABLE} {name} {BASE_CHAINS.get(name, '')}".rstrip())
    lines += [f"add set {TABLE} {name} {AFFINITY_SET}" for name in sorted(new.sets - old.sets)]
    for name, rules in new.chains.items():
        if old.chains.get(name) != rules:
            if name in old.chains:
                lines.append(f"flush chain {TABLE} {name}")
            lines += [f"add rule {TABLE} {name} {rule}" for rule in rules]
    for m in MAPS:
        before, after = old.elements[m], new.elements[m]
        gone = [k for k, v in before.items() if after.get(k) != v]
        lines += [f"delete element {TABLE} {m} {{ {k} }}" for k in gone]
        lines += [f"add element {TABLE} {m} {{ {k} : {v} }}" for k, v in after.items()
                  if before.get(k) != v]
    stale = [name for name in old.chains if name not in new.chains]
    lines += [f"flush chain {TABLE} {name}" for name in stale]
    lines += [f"delete set {TABLE} {name}" for name in sorted(old.sets - new.sets)]
    lines += [f"delete chain {TABLE} {name}" for name in stale]
    return "\n".join(lines) + "\n" if lines else ""
