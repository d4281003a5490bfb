"""kube-proxy's IPVS mode: what a node holds for the cluster's Services, and the commands that
move it from one set of Services to the next. Only where the kernel has IPVS (ip_vs).

As kube-proxy builds it (pkg/proxy/ipvs): every ClusterIP, external IP and LoadBalancer
address sits on a dummy device kube-ipvs0, so the node accepts them as local; an IPVS virtual
server per address and port (scheduler rr; ClientIP affinity as persistence of its timeout,
10800 s by default) NATs to its endpoints (masquerading forwarding, `-m`), only the node's own
ones where a traffic policy is Local; a NodePort is a virtual server on the node's address. A
few fixed iptables rules match ipsets instead of one rule per Service: KUBE-CLUSTER-IP to mark
traffic from outside the pod CIDR for masquerade, KUBE-NODE-PORT-TCP/UDP, KUBE-EXTERNAL-IP and
KUBE-LOAD-BALANCER likewise, KUBE-LOOP-BACK for a pod reaching itself (hairpin); in the
filter table KUBE-FORWARD, health-check node ports, loadBalancerSourceRanges
(KUBE-LOAD-BALANCER-FW, KUBE-LOAD-BALANCER-SOURCE-CIDR) and KUBE-IPVS-FILTER (a new connection
to a kube-ipvs0 address on a port no Service has is refused), as kube-proxy's IPVS mode writes
them (without the ipsets' comments on the rules). As in kube-proxy's IPVS mode, a Service
without endpoints is not refused (its virtual server has no real server).

render() is pure; commands() diffs two renders into ipvsadm-restore, ipset restore and
`ip -batch` input.

Dual-stack: the IPv6 proxier writes the same, as kube-proxy's does: its ipsets are named
KUBE-6-* (kube-proxy's prefix for IPv6 sets, cut at ipset's 31 characters) and hold inet6
entries, its rules go to ip6tables, its virtual servers and real servers are written
`[address]:port`, and kube-ipvs0 holds its addresses as /128.
"""
from dataclasses import dataclass, field
from typing import Any

from testbed.kubeproxy.applier import ProxyApplier, hook
from testbed.kubeproxy.modes import register
from testbed.kubeproxy.modes.iptables import BASE_JUMPS, FORWARD_RULES
from testbed.kubeproxy.types import MASQ_MARK, ServicePort, firewall_sources, topology_endpoints
from testbed.manifests.families import IPV4, IPV6, join_host_port
from testbed.model.context import NodeContext

DEVICE = "kube-ipvs0"
SCHEDULER = "rr"
IPSETS = {  # name -> type, as kube-proxy creates them
    "KUBE-CLUSTER-IP": "hash:ip,port",
    "KUBE-LOAD-BALANCER": "hash:ip,port",
    "KUBE-EXTERNAL-IP": "hash:ip,port",
    "KUBE-LOOP-BACK": "hash:ip,port,ip",
    "KUBE-NODE-PORT-TCP": "bitmap:port range 0-65535",
    "KUBE-NODE-PORT-UDP": "bitmap:port range 0-65535",
    "KUBE-NODE-PORT-SCTP-HASH": "hash:ip,port",  # SCTP NodePorts are per node address
    "KUBE-LOAD-BALANCER-FW": "hash:ip,port",  # load-balancer ports with source ranges
    "KUBE-LOAD-BALANCER-SOURCE-CIDR": "hash:ip,port,net",  # ... and the ranges let in
    "KUBE-HEALTH-CHECK-NODE-PORT": "bitmap:port range 0-65535",
    "KUBE-IPVS-IPS": "hash:ip",  # every address on kube-ipvs0
}
FILTER_CHAINS = ("KUBE-FORWARD", "KUBE-NODE-PORT", "KUBE-PROXY-FIREWALL",
                 "KUBE-SOURCE-RANGES-FIREWALL", "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER")
FILTER_JUMPS = [  # (built-in chain, rule), kube-proxy's iptablesJumpChain for the filter table
    ("FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("INPUT", '-m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT'),
    ("INPUT", '-m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL'),
    ("FORWARD", '-m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL'),
    ("INPUT", '-m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER'),
    ("OUTPUT", '-m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER'),
]
SERVICE_FLAGS = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}  # ipvsadm's
SYSCTLS = [  # kube-proxy's settings for IPVS: conntrack for masquerading, fast reuse of ports
    "net.ipv4.vs.conntrack=1", "net.ipv4.vs.conn_reuse_mode=0",
    "net.ipv4.vs.expire_nodest_conn=1", "net.ipv4.vs.expire_quiescent_template=1",
    # the addresses on kube-ipvs0 must not be answered for on the node's other interfaces
    "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
]


IPSET_NAME_MAX = 31


def set_name(name: str, family: str = IPV4) -> str:
    """An ipset's name for a family: kube-proxy's IPv6 sets are KUBE-6-*, cut at 31
    characters (KUBE-6-LOAD-BALANCER-SOURCE-CIDR becomes KUBE-6-LOAD-BALANCER-SOURCE-CID)."""
    if family != IPV6:
        return name
    return name.replace("KUBE-", "KUBE-6-", 1)[:IPSET_NAME_MAX]


def set_type(kind: str, family: str = IPV4) -> str:
    """`ipset create` type and options: a hash set of IPv6 entries says `family inet6`."""
    return f"{kind} family inet6" if family == IPV6 and kind.startswith("hash:") else kind


def nat_rules(pod_cidr: str, family: str = IPV4) -> str:
    """The fixed filter and nat chains (iptables-restore --noflush input, ip6tables-restore's
    for IPv6), matching kube-proxy's ipsets: KUBE-FORWARD, health-check node ports accepted,
    load-balancer source ranges (KUBE-PROXY-FIREWALL, KUBE-SOURCE-RANGES-FIREWALL), and
    KUBE-IPVS-FILTER, which refuses a new connection to an address on kube-ipvs0 but no
    Service's port of it."""
    (cluster_ip, load_balancer, external_ip, loop_back, node_port_tcp, node_port_udp,
     node_port_sctp, lb_firewall, lb_sources, health_checks, ipvs_ips) = (
        set_name(name, family) for name in IPSETS)  # chains keep their names in ip6tables
    match = "-m set --match-set"
    ret = [f"-A KUBE-IPVS-FILTER {match} {name} dst,dst -j RETURN"
           for name in (load_balancer, cluster_ip, external_ip)]
    return "\n".join([
        "*filter", *[f":{chain} - [0:0]" for chain in FILTER_CHAINS],
        *[f"-A KUBE-FORWARD {rule}" for rule in FORWARD_RULES[1:]],  # no INVALID drop here
        f"-A KUBE-NODE-PORT {match} {health_checks} dst -j ACCEPT",
        f"-A KUBE-PROXY-FIREWALL {match} {lb_firewall} dst,dst -j KUBE-SOURCE-RANGES-FIREWALL",
        f"-A KUBE-SOURCE-RANGES-FIREWALL {match} {lb_sources} dst,dst,src -j RETURN",
        "-A KUBE-SOURCE-RANGES-FIREWALL -j DROP",
        *ret, f"-A KUBE-IPVS-FILTER {match} {health_checks} dst -j RETURN",
        f"-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW {match} {ipvs_ips} dst -j REJECT",
        "COMMIT",
        "*nat",
        ":KUBE-SERVICES - [0:0]", ":KUBE-POSTROUTING - [0:0]", ":KUBE-MARK-MASQ - [0:0]",
        ":KUBE-NODE-PORT - [0:0]", ":KUBE-LOAD-BALANCER - [0:0]",
        f'-A KUBE-SERVICES ! -s {pod_cidr} -m comment --comment "Kubernetes service cluster ip '
        f'+ port for masquerade purpose" {match} {cluster_ip} dst,dst -j KUBE-MARK-MASQ',
        f"-A KUBE-SERVICES {match} {load_balancer} dst,dst -j KUBE-LOAD-BALANCER",
        f'-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for '
        f'masquerade and filter purpose" {match} {external_ip} dst,dst -j KUBE-MARK-MASQ',
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
        f"-A KUBE-SERVICES {match} {cluster_ip} dst,dst -j ACCEPT",
        f"-A KUBE-SERVICES {match} {load_balancer} dst,dst -j ACCEPT",
        f"-A KUBE-NODE-PORT -p tcp {match} {node_port_tcp} dst -j KUBE-MARK-MASQ",
        f"-A KUBE-NODE-PORT -p udp {match} {node_port_udp} dst -j KUBE-MARK-MASQ",
        f"-A KUBE-NODE-PORT -p sctp {match} {node_port_sctp} dst,dst -j KUBE-MARK-MASQ",
        "-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ",
        f'-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip '
        f'for solving hairpin purpose" {match} {loop_back} dst,dst,src -j MASQUERADE',
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        "-A KUBE-POSTROUTING -j MASQUERADE --random-fully",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
        "COMMIT", ""])


@dataclass
class IpvsState:
    """One node's view: virtual servers ((proto, ip, port) -> (persistence s, {(ip, port)})),
    addresses on kube-ipvs0, and ipset entries (set -> {entry})."""
    virtual: dict = field(default_factory=dict)
    addresses: set = field(default_factory=set)
    sets: dict = field(default_factory=lambda: {name: set() for name in IPSETS})


def render(service_ports: list[ServicePort], node_ip: str, node: str = "",
           zone: str = "") -> "IpvsState":
    """Node `node`'s view (in topology zone `zone`); a traffic policy Local leaves only its
    own endpoints as real servers of the internal (ClusterIP) or external (NodePort, LB,
    external IP) servers — all of them where it has none, as kube-proxy's IPVS mode lets
    local pods through; topology hints narrow the rest to the zone's. Sets are keyed by
    their IPv4 names (commands() names them for the family)."""
    st = IpvsState()
    for sp in service_ports:
        persistence = sp.affinity_timeout if sp.affinity else 0
        every = frozenset((ep.ip, ep.port) for ep in topology_endpoints(sp, zone))
        local = frozenset((ep.ip, ep.port) for ep in sp.local_endpoints(node)) or every
        internal = local if sp.internal_local else every
        external = local if sp.external_local else every
        st.addresses.add(sp.cluster_ip)
        st.sets["KUBE-CLUSTER-IP"].add(f"{sp.cluster_ip},{sp.protocol}:{sp.port}")
        st.virtual[(sp.protocol, sp.cluster_ip, sp.port)] = (persistence, internal)
        for ip in sp.load_balancer_ips:
            st.addresses.add(ip)
            entry = f"{ip},{sp.protocol}:{sp.port}"
            st.sets["KUBE-LOAD-BALANCER"].add(entry)
            st.virtual[(sp.protocol, ip, sp.port)] = (persistence, external)
            if sp.source_ranges:
                st.sets["KUBE-LOAD-BALANCER-FW"].add(entry)
                st.sets["KUBE-LOAD-BALANCER-SOURCE-CIDR"] |= {f"{entry},{cidr}" for cidr in
                                                              firewall_sources(sp, node_ip)}
        for ip in sp.external_ips:
            st.addresses.add(ip)
            st.sets["KUBE-EXTERNAL-IP"].add(f"{ip},{sp.protocol}:{sp.port}")
            st.virtual[(sp.protocol, ip, sp.port)] = (persistence, external)
        if sp.node_port and sp.protocol == "sctp":
            st.sets["KUBE-NODE-PORT-SCTP-HASH"].add(f"{node_ip},sctp:{sp.node_port}")
        elif sp.node_port:
            st.sets[f"KUBE-NODE-PORT-{sp.protocol.upper()}"].add(str(sp.node_port))
        if sp.node_port:
            st.virtual[(sp.protocol, node_ip, sp.node_port)] = (persistence, external)
        if sp.health_check_node_port:
            st.sets["KUBE-HEALTH-CHECK-NODE-PORT"].add(str(sp.health_check_node_port))
        for ep in sp.endpoints:
            st.sets["KUBE-LOOP-BACK"].add(f"{ep.ip},{sp.protocol}:{ep.port},{ep.ip}")
    st.sets["KUBE-IPVS-IPS"] = set(st.addresses)
    return st


def _service(key):
    proto, ip, port = key
    return f"{SERVICE_FLAGS[proto]} {join_host_port(ip, port)}"


def commands(old: "IpvsState | None", new: "IpvsState",
             family: str = IPV4) -> tuple[str, str, str]:
    """(ipvsadm-restore input, ipset restore input, `ip -batch` input) from render `old`
    (None: a node with nothing yet) to render `new`, for the proxier of `family`."""
    old = old or IpvsState()
    host = "128" if family == IPV6 else "32"
    ipvs = []
    for key, (persistence, reals) in new.virtual.items():
        before = old.virtual.get(key)
        if before is None or before[0] != persistence:
            if before is not None:
                ipvs.append(f"-D {_service(key)}")
            before = (persistence, frozenset())
            ipvs.append(f"-A {_service(key)} -s {SCHEDULER}" +
                        (f" -p {persistence}" if persistence else ""))
        ipvs += [f"-a {_service(key)} -r {join_host_port(ip, port)} -m -w 1"
                 for ip, port in sorted(reals - before[1])]
        ipvs += [f"-d {_service(key)} -r {join_host_port(ip, port)}"
                 for ip, port in sorted(before[1] - reals)]
    ipvs += [f"-D {_service(key)}" for key in old.virtual if key not in new.virtual]
    sets = []
    if not old.virtual and not any(old.sets.values()):
        sets += [f"create {set_name(name, family)} {set_type(kind, family)} -exist"
                 for name, kind in IPSETS.items()]
    for name in IPSETS:
        named = set_name(name, family)
        sets += [f"add {named} {entry} -exist" for entry in sorted(new.sets[name] - old.sets[name])]
        sets += [f"del {named} {entry} -exist" for entry in sorted(old.sets[name] - new.sets[name])]
    addrs = [f"address add {ip}/{host} dev {DEVICE}"
             for ip in sorted(new.addresses - old.addresses)]
    addrs += [f"address del {ip}/{host} dev {DEVICE}"
              for ip in sorted(old.addresses - new.addresses)]
    return "\n".join(ipvs), "\n".join(sets), "\n".join(addrs)


@register
class IpvsProxies(ProxyApplier):
    """kube-proxy's IPVS mode: virtual servers, ipsets and kube-ipvs0 addresses by diff."""

    name = "ipvs"
    needs = {"ipvs": "the kernel's IPVS (ip_vs)", "ipvsadm": "ipvsadm", "ipset": "ipset",
             "iptables": "iptables with the kernel's nat table"}
    ip_families = (IPV4, IPV6)

    @classmethod
    def describe(cls, sp: ServicePort) -> list[str]:
        return [cls.heading(sp), f"  IPVS virtual server {sp.cluster_ip}:{sp.port}/{sp.protocol}"]

    def render(self, ports: list[ServicePort], pod_cidr: str, node: NodeContext) -> Any:
        node_ip = node.ip_v6 if self.family == IPV6 and node.ip_v6 is not None else node.ip
        return render(ports, str(node_ip.ip), node.name, self.zones.get(node.name, "")), \
            pod_cidr

    def apply(self, node: NodeContext, rendered: Any) -> None:
        new, pod_cidr = rendered
        first = node.name not in self.last
        ipvs, sets, addresses = commands(self.last[node.name][0] if not first else None, new,
                                         self.family)
        if first and self.family == IPV4:  # one device and one set of settings per node
            node.ns.run("ip", "link", "add", DEVICE, "type", "dummy")
            for setting in SYSCTLS:
                node.ns.run("sysctl", "-qw", setting)
        if sets:  # before the rules that match them
            node.ns.run("ipset", "restore", input=sets + "\n")
        if first:
            node.ns.run(f"{self.tool}-restore", "--noflush",
                        input=nat_rules(pod_cidr, self.family))
            hook(node, [j for j in BASE_JUMPS if j[0] == "nat"] +
                 [("filter", chain, rule) for chain, rule in FILTER_JUMPS], self.tool)
        if addresses:
            node.ns.run("ip", "-batch", "-", input=addresses + "\n")
        if ipvs:
            node.ns.run("ipvsadm", "-R", input=ipvs + "\n")
        self.last[node.name] = rendered
