"""kube-proxy's iptables mode: the nat table a node gets for the cluster's Services.

The chain structure and names are kube-proxy's own (pkg/proxy/iptables): KUBE-SERVICES matches
each ClusterIP and port and jumps to KUBE-SVC-<hash>, which picks an endpoint with the
statistic match (probability 1/n, then 1/(n-1), ... so each is equally likely) and jumps to
KUBE-SEP-<hash>, which DNATs to it. Chain hashes are base32(sha256(...))[:16] as kube-proxy
computes them. Traffic to a ClusterIP from outside the pod CIDR, and a pod reaching itself
through its Service (hairpin), are marked in KUBE-MARK-MASQ and masqueraded in
KUBE-POSTROUTING; NodePorts go through KUBE-NODEPORTS and KUBE-EXT-<hash>, masqueraded too.
sessionAffinity ClientIP uses the recent match, with kube-proxy's 10800 s timeout.

ruleset() is pure (services and endpoints in, {chain: rules} out); restore_input() turns it into
iptables-restore input. Applied with --noflush, that replaces the chains it declares and
leaves every other chain alone, which kube-proxy's partial sync (1.27+, MinimizeIPTablesRestore)
builds on: the top-level chains are written whole on every sync, a Service's own chains only
when they changed, chains that went away are deleted; a node's first sync is full.
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


TOP_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")


def ruleset(service_ports, pod_cidr) -> dict[str, list[str]]:
    """{chain: its rules ("-A CHAIN ...")} of the nat table for these service ports, the
    top-level chains first."""
    chains = {c: [] for c in TOP_CHAINS}

    def add(chain, rule):
        chains.setdefault(chain, []).append(f"-A {chain} {rule}")
    add("KUBE-POSTROUTING", f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN")
    add("KUBE-POSTROUTING", f"-j MARK --xor-mark {MASQ_MARK}")
    add("KUBE-POSTROUTING", f"{_comment('kubernetes service traffic requiring SNAT')} "
        "-j MASQUERADE --random-fully")
    add("KUBE-MARK-MASQ", f"-j MARK --or-mark {MASQ_MARK}")
    for sp in sorted(service_ports, key=lambda s: (s.id, s.protocol)):
        if not sp.endpoints:
            continue  # kube-proxy rejects these in the filter table; here nothing answers
        proto = f"-p {sp.protocol} -m {sp.protocol}"
        to_service = f"-d {sp.cluster_ip}/32 {proto} --dport {sp.port}"
        svc = svc_chain(sp)
        chains[svc] = []
        add("KUBE-SERVICES", f"{to_service} {_comment(sp.id + ' cluster IP')} -j {svc}")
        add(svc, f"! -s {pod_cidr} {to_service} {_comment(sp.id + ' cluster IP')} "
            "-j KUBE-MARK-MASQ")
        if sp.node_port or sp.external_ips:
            ext = ext_chain(sp)
            chains[ext] = []
            for ip in sp.external_ips:
                add("KUBE-SERVICES", f"-d {ip}/32 {proto} --dport {sp.port} "
                    f"{_comment(sp.id + ' loadbalancer IP')} -j {ext}")
            if sp.node_port:
                add("KUBE-NODEPORTS", f"{proto} --dport {sp.node_port} {_comment(sp.id)} "
                    f"-j {ext}")
            masq_why = _comment(f"masquerade traffic for {sp.id} external destinations")
            add(ext, f"{masq_why} -j KUBE-MARK-MASQ")
            add(ext, f"-j {svc}")
        seps = [(ep, sep_chain(sp, ep)) for ep in sp.endpoints]
        if sp.affinity:
            for (ip, port), sep in seps:
                add(svc, f"{_comment(f'{sp.id} -> {ip}:{port}')} -m recent --name {sep} "
                    f"--mask 255.255.255.255 --rsource --rcheck --seconds {AFFINITY_TIMEOUT_S} "
                    f"--reap -j {sep}")
        for i, ((ip, port), sep) in enumerate(seps):
            left = len(seps) - i
            pick = "" if left == 1 else \
                f" -m statistic --mode random --probability {1 / left:0.10f}"
            add(svc, f"{_comment(f'{sp.id} -> {ip}:{port}')}{pick} -j {sep}")
            chains[sep] = []
            add(sep, f"-s {ip}/32 {_comment(sp.id)} -j KUBE-MARK-MASQ")
            remember = (f" -m recent --name {sep} --mask 255.255.255.255 --rsource --set"
                        if sp.affinity else "")
            add(sep, f"{proto} {_comment(sp.id)}{remember} -j DNAT --to-destination {ip}:{port}")
    last = _comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
    add("KUBE-SERVICES", f"{last} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    return chains


def restore_input(chains: dict[str, list[str]], held: dict[str, list[str]] | None = None,
                  partial: bool = False) -> str:
    """iptables-restore input that brings a node holding `held` (None: not known) to `chains`.
    Chains `held` has and `chains` lacks are deleted. partial: as kube-proxy's partial sync,
    a Service's chains are written only when they differ from what is held."""
    held = held or {}
    written = [c for c in chains if not partial or c in TOP_CHAINS or held.get(c) != chains[c]]
    gone = [c for c in held if c not in chains]
    lines = ["*nat"] + [f":{c} - [0:0]" for c in written + gone]
    for chain in written:
        lines += chains[chain]
    lines += [f"-X {c}" for c in gone] + ["COMMIT", ""]
    return "\n".join(lines)
