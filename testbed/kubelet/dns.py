"""A pod's /etc/resolv.conf as the kubelet writes it (pkg/kubelet/network/dns), from the pod's
dnsPolicy and dnsConfig:

- ClusterFirst (the default): the cluster DNS server, the search list <ns>.svc.<domain>
  svc.<domain> <domain> followed by the node's own search domains, options ndots:5;
- Default: the node's resolv.conf (the emulated node's: its rack's gateway, never this
  machine's);
- None: nothing but what dnsConfig gives;
- ClusterFirstWithHostNet: as ClusterFirst; the two differ for hostNetwork pods, which get
  ClusterFirst's only with ClusterFirstWithHostNet and the node's (Default) with ClusterFirst;
then dnsConfig is merged in as the kubelet merges it: its nameservers and searches appended
(duplicates dropped), its options replacing those of the same name. At most 3 nameservers and
32 search domains are written, as the kubelet keeps.
"""
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")


def _unique(items):
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def parse_resolv_conf(text: str) -> tuple[list, list, list]:
    """(nameservers, searches, options) of a resolv.conf."""
    nameservers, searches, options = [], [], []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            options += words[1:]
    return nameservers, searches, options


def pod_resolv_conf(dns: dict, namespace: str, cluster_dns: str, domain: str,
                    node_conf: str) -> str:
    """The resolv.conf of a pod with these dnsPolicy/dnsConfig settings (the pod record's
    `dns`: policy, nameservers, searches, options as [name, value or None])."""
    policy = dns.get("policy") or "ClusterFirst"
    if policy == "ClusterFirst" and dns.get("host_network"):
        policy = "Default"  # the kubelet's rule: a hostNetwork pod must ask for cluster DNS
    host_servers, host_searches, host_options = parse_resolv_conf(node_conf)
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        servers = [cluster_dns]
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain] + host_searches
        options = ["ndots:5"]
    elif policy == "Default":
        servers, searches, options = host_servers, host_searches, host_options
    else:
        servers, searches, options = [], [], []
    servers = _unique(servers + list(dns.get("nameservers", [])))[:MAX_NAMESERVERS]
    searches = _unique(searches + list(dns.get("searches", [])))[:MAX_SEARCHES]
    merged = {o.split(":", 1)[0]: o for o in options}
    for name, value in dns.get("options", []):
        merged[name] = name if value is None else f"{name}:{value}"
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {s}" for s in servers]
    if merged:
        lines.append("options " + " ".join(merged.values()))
    return "\n".join(lines) + "\n" if lines else ""


def node_resolv_conf(gateway: str) -> str:
    """An emulated node's own resolv.conf (what the kubelet's --resolv-conf reads): the
    resolver its network would give it, the rack's gateway. Nothing answers DNS there — the
    emulation has no upstream — so names a pod with dnsPolicy Default looks up fail at once."""
    return f"nameserver {gateway}\n"
