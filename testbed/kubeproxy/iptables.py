"""kube-proxy's iptables mode: the nat table a node gets for the cluster's Services.

The chain structure and names are kube-proxy's own (pkg/proxy/iptables): KUBE-SERVICES matches
each ClusterIP and port and jumps to KUBE-SVC-<hash>, which picks an endpoint with the
statistic match (probability 1/n, then 1/(n-1), ... so each is equally likely) and jumps to
KUBE-SEP-<hash>, which DNATs to it. Chain hashes are base32(sha256(...))[:16] as kube-proxy
computes them. Traffic to a ClusterIP from outside the pod CIDR, and a pod reaching itself
through its Service (hairpin), are marked in KUBE-MARK-MASQ and masqueraded in
KUBE-POSTROUTING; NodePorts go through KUBE-NODEPORTS and KUBE-EXT-<hash>, masqueraded too.
sessionAffinity ClientIP uses the recent match, with kube-proxy's 10800 s timeout.

render() is pure (services and endpoints in, iptables-restore text out); sync() applies it to
every node with iptables-restore --noflush, which replaces the chains it declares and leaves
every other rule of the node alone.
"""
import base64
import hashlib

from testbed.kubeproxy.types import AFFINITY_TIMEOUT_S, MASQ_MARK

BASE_JUMPS = [  # (table chain, rule) kube-proxy hooks into the built-in chains
    ("PREROUTING", ["-m", "comment", "--comment", "kubernetes service portals",
                    "-j", "KUBE-SERVICES"]),
    ("OUTPUT", ["-m", "comment", "--comment", "kubernetes service portals",
                "-j", "KUBE-SERVICES"]),
    ("POSTROUTING", ["-m", "comment", "--comment", "kubernetes postrouting rules",
                     "-j", "KUBE-POSTROUTING"]),
]


def _hash(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(sp):
    return "KUBE-SVC-" + _hash(sp.id + sp.protocol)


def ext_chain(sp):
    return "KUBE-EXT-" + _hash(sp.id + sp.protocol)


def sep_chain(sp, endpoint):
    ip, port = endpoint
    return "KUBE-SEP-" + _hash(sp.id + sp.protocol + f"{ip}:{port}")


def _comment(text):
    return f'-m comment --comment "{text}"'


def render(service_ports, pod_cidr, stale=()):
    """The iptables-restore input (nat table) for these service ports; chains named in
    `stale` (those of an earlier render that are gone now) are deleted."""
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    rules = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        f"-A KUBE-POSTROUTING {_comment('kubernetes service traffic requiring SNAT')} "
        "-j MASQUERADE --random-fully",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    for sp in sorted(service_ports, key=lambda s: (s.id, s.protocol)):
        if not sp.endpoints:
            continue  # kube-proxy rejects these in the filter table; here nothing answers
        proto = f"-p {sp.protocol} -m {sp.protocol}"
        to_service = f"-d {sp.cluster_ip}/32 {proto} --dport {sp.port}"
        svc = svc_chain(sp)
        chains.append(svc)
        rules.append(f"-A KUBE-SERVICES {to_service} {_comment(sp.id + ' cluster IP')} "
                     f"-j {svc}")
        rules.append(f"-A {svc} ! -s {pod_cidr} {to_service} "
                     f"{_comment(sp.id + ' cluster IP')} -j KUBE-MARK-MASQ")
        if sp.node_port or sp.external_ips:
            ext = ext_chain(sp)
            chains.append(ext)
            for ip in sp.external_ips:
                rules.append(f"-A KUBE-SERVICES -d {ip}/32 {proto} --dport {sp.port} "
                             f"{_comment(sp.id + ' loadbalancer IP')} -j {ext}")
            if sp.node_port:
                rules.append(f"-A KUBE-NODEPORTS {proto} --dport {sp.node_port} "
                             f"{_comment(sp.id)} -j {ext}")
            masq_why = _comment(f"masquerade traffic for {sp.id} external destinations")
            rules.append(f"-A {ext} {masq_why} -j KUBE-MARK-MASQ")
            rules.append(f"-A {ext} -j {svc}")
        seps = [(ep, sep_chain(sp, ep)) for ep in sp.endpoints]
        if sp.affinity:
            for (ip, port), sep in seps:
                rules.append(f"-A {svc} {_comment(f'{sp.id} -> {ip}:{port}')} -m recent "
                             f"--name {sep} --mask 255.255.255.255 --rsource --rcheck "
                             f"--seconds {AFFINITY_TIMEOUT_S} --reap -j {sep}")
        for i, ((ip, port), sep) in enumerate(seps):
            left = len(seps) - i
            pick = "" if left == 1 else \
                f" -m statistic --mode random --probability {1 / left:0.10f}"
            rules.append(f"-A {svc} {_comment(f'{sp.id} -> {ip}:{port}')}{pick} -j {sep}")
            chains.append(sep)
            rules.append(f"-A {sep} -s {ip}/32 {_comment(sp.id)} -j KUBE-MARK-MASQ")
            remember = (f" -m recent --name {sep} --mask 255.255.255.255 --rsource --set"
                        if sp.affinity else "")
            rules.append(f"-A {sep} {proto} {_comment(sp.id)}{remember} -j DNAT "
                         f"--to-destination {ip}:{port}")
    last = _comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
    rules.append(f"-A KUBE-SERVICES {last} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    gone = [c for c in stale if c not in chains]
    lines = ["*nat"] + [f":{c} - [0:0]" for c in chains + gone] + rules + \
        [f"-X {c}" for c in gone] + ["COMMIT", ""]
    return "\n".join(lines), chains


def service_chains(chains):
    """The per-service chains of a render (the ones that can go stale)."""
    return [c for c in chains if c.startswith(("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-"))]
