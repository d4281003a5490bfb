"""An eBPF datapath in Cilium's shape: lxc veths with tc programs, no bridge, maps the testbed
fills as Cilium's agent does, and Services in BPF instead of kube-proxy.

Per node: the programs of build/bpf/datapath.o loaded once, with their maps, pinned under
/sys/fs/bpf/testbed/<cluster>/<node>/; the veth pair cilium_host/cilium_net (cilium_host holds
the router address, the first of the node's pod CIDR, that pods route through);
cil_from_netdev on eth0's ingress, cil_from_host on cilium_host's egress and, with tunnel
routing, cilium_vxlan (a collect-metadata VXLAN device, port 8472) with cil_from_overlay on its
ingress. Per pod: cil_from_container on its lxc device's ingress, an endpoint entry on its node
and an ipcache entry (its identity, its node) on every node. Per peer: an ipcache entry for
its pod CIDR and, with native routing, the route Cilium's autoDirectNodeRoutes writes.

Dual-stack, as Cilium with enable-ipv6: cilium_host also holds the IPv6 pod CIDR's first
address, pods get an address of each family (a /128 and a default route via that address,
whose neighbour solicitation the program answers), the endpoint and ipcache entries come in
both families, IPv6 Services live in the cilium_lb6_* maps and their flows in
cilium_ct6_global, native routing takes bpf_fib_lookup's IPv6 side (and a route per peer via
its IPv6 address), and tunnel routing carries IPv6 over the IPv4 underlay as Cilium does.
"""
import os
import shutil
import threading
from dataclasses import dataclass
from ipaddress import IPv4Network

from testbed import BUILD
from testbed.errors import CommandError, TestbedError
from testbed.host import netns
from testbed.host.probes import Probe
from testbed.manifests.families import IPV4, IPV6, SERVICE_CIDRS
from testbed.model import ipam
from testbed.model.context import ClusterContext, NodeContext
from testbed.model.records import PodRecord
from testbed.model.spec import Section
from testbed.model.state import RunState
from testbed.model.topology import ClusterSpec, PodSpec
from testbed.modes.base import UNDERLAY_DEV, Mode, pod_ranges, register
from testbed.modes.ebpf import explain, maps, report
from testbed.modes.ebpf.maps import MapWrite
from testbed.modes.ebpf.services import BpfServices

PLUGIN_TYPE = "testbed-cilium"
NETWORK_NAME = "cilium"  # the network name in Cilium's CNI configuration
OBJECT = BUILD / "bpf" / "datapath.o"
BPFFS = "/sys/fs/bpf"
PIN_ROOT = f"{BPFFS}/testbed"
HOST_DEV, NET_DEV, VXLAN_DEV = "cilium_host", "cilium_net", "cilium_vxlan"
VXLAN_PORT = 8472  # Cilium's default tunnel port
VXLAN_OVERHEAD = 50
MASQ_CHAIN = "CILIUM_POST_nat"
# the BPF helpers the mode's tc programs call (bpftool feature probe, program type sched_cls),
# with what each one does for it
HELPERS = (
    ("bpf_redirect_peer", "delivery into a pod's namespace without the host stack"),
    ("bpf_redirect_neigh", "native routing out of eth0 with the neighbour resolved"),
    ("bpf_fib_lookup", "native routing by the kernel's FIB"),
    ("bpf_skb_set_tunnel_key", "tunnel routing (the peer node and the identity in the VNI)"),
    ("bpf_skb_get_tunnel_key", "tunnel routing (the source identity of what arrives)"),
    ("bpf_skb_change_type", "delivery of decapsulated packets"),
)
ROUTING = ("native", "tunnel")  # Cilium's routingMode; the first is the testbed's default


@dataclass(frozen=True)
class EbpfOptions:
    routing: str = ROUTING[0]


def read_ebpf(section: Section) -> EbpfOptions:
    """`ebpf: {routing: native|tunnel}`."""
    section.fields({"routing"})
    return EbpfOptions(section.choice("routing", ROUTING))


def cluster_pins(cluster: str) -> str:
    """Everything a cluster pins (recorded in its state, removed with it)."""
    return f"{PIN_ROOT}/{cluster}"


def pin_dir(cluster: str, node: str) -> str:
    return f"{cluster_pins(cluster)}/{node}"


def maps_dir(cluster: str, node: str) -> str:
    """Where a node's maps are pinned."""
    return f"{pin_dir(cluster, node)}/maps"


def router_ip(lease: IPv4Network) -> str:
    """cilium_host's address: the first of the node's pod CIDR."""
    return str(lease[1])


def host_prefix(address: object) -> str:
    """One address as an ipcache prefix: /32, or /128 for IPv6."""
    return f"{address}/{128 if ':' in str(address) else 32}"


def _ensure_bpffs():
    """Pins need a BPF filesystem at /sys/fs/bpf; mount one where the machine has none (as
    Cilium's agent does)."""
    with open("/proc/mounts") as f:
        if any(line.split()[1:3] == [BPFFS, "bpf"] for line in f):
            return
    netns.run(["mount", "-t", "bpf", "bpf", BPFFS])


def _ifindexes(node) -> dict[str, int]:
    return {link["ifname"]: link["ifindex"] for link in node.ns.ip_json("link", "show")}


def _tc_attach(node, dev: str, direction: str, program: str):
    """A pinned program at a device's tc hook (a clsact qdisc, one filter), in one tc."""
    node.ns.batch("tc", [f"qdisc replace dev {dev} clsact",
                         f"filter replace dev {dev} {direction} prio 1 handle 1 bpf "
                         f"direct-action object-pinned "
                         f"{pin_dir(node.facts['cluster'], node.name)}/progs/{program}"])


@register
class EbpfMode(Mode):
    name = "ebpf"
    summary = "Cilium's shape: lxc veths with tc eBPF programs, BPF maps, kube-proxy replaced"
    probes = (Probe("bpftool", "binary", "the ebpf mode (loads its programs, writes its maps) "
                    "and `testbed bpf`"),
              Probe("bpf/datapath.o", "built", "the ebpf mode's programs (compiled by "
                    "scripts/install.sh with clang)"),
              *(Probe(name, "bpf-helper", f"the ebpf mode: {does}") for name, does in HELPERS))
    requires = ("veth", "vxlan", "iptables", f"cni/{PLUGIN_TYPE}",
                *(probe.name for probe in probes))
    cni_plugins = {PLUGIN_TYPE: "testbed.modes.ebpf.cilium_plugin"}
    options = {"ebpf": read_ebpf}
    policy_note = "the ebpf mode does not enforce NetworkPolicy yet (Cilium would, with " \
        "identities in a policy map per endpoint)"
    kube_proxy_replacement = BpfServices
    ip_families = ("ipv4", "dual")
    ip_family_note = "IPv6-only clusters are not built in the ebpf mode"

    def __init__(self):
        self.identities = {}  # (namespace, labels) -> numeric security identity
        self.pod_ips = {}  # pod key -> its addresses, for the entries to take back
        self._ipcache_pending = []  # MapWrites every node's ipcache still has to take
        self._ipcache_flushing = False
        self._lock = threading.Lock()

    def routing(self, spec: ClusterSpec) -> str:
        """"native" (the FIB, one L2 segment) or "tunnel" (VXLAN between nodes)."""
        return self.option(spec, "ebpf").routing

    def describe_datapath(self, spec: ClusterSpec, caps: dict) -> str:
        if self.routing(spec) == "tunnel":
            how = "cilium_vxlan with a tunnel key per peer (VNI: the source identity)"
        else:
            how = "bpf_fib_lookup + bpf_redirect_neigh out of eth0"
        return ("eBPF (tc): lxc veths, bpf_redirect_peer into pods, " + how +
                "; Services in BPF maps (no kube-proxy)")

    def check(self, spec: ClusterSpec) -> None:
        ipam.check_lease_room(spec)
        racks = {node.rack for node in spec.nodes}
        if self.routing(spec) == "native" and len(racks) > 1:
            raise TestbedError(
                f"{spec.path}: ebpf.routing: native needs every node on one L2 segment (the "
                f"nodes are on {len(racks)} racks); set `ebpf: {{routing: tunnel}}` across racks")

    def plan(self, spec: ClusterSpec) -> dict:
        return ipam.node_leases(spec)

    def plan_v6(self, spec: ClusterSpec) -> dict:
        return ipam.node_leases_v6(spec)

    def pod_mtu(self, spec: ClusterSpec) -> int:
        return spec.mtu - (VXLAN_OVERHEAD if self.routing(spec) == "tunnel" else 0)

    def service_proxy(self, cluster: ClusterContext) -> object | None:
        return BpfServices(lambda node: maps_dir(cluster.spec.name, node))

    # --- nodes -------------------------------------------------------------------------------
    def prepare(self, cluster: ClusterContext) -> None:
        _ensure_bpffs()
        root = cluster_pins(cluster.spec.name)
        cluster.state.own("dirs", root)
        os.makedirs(root, exist_ok=True)

    def setup_node(self, spec: ClusterSpec, node: NodeContext) -> None:
        node.facts.update(cluster=spec.name, routing=self.routing(spec),
                          router=router_ip(node.lease))
        if node.lease_v6 is not None:
            node.facts["router6"] = str(node.lease_v6[1])
        pins = pin_dir(spec.name, node.name)
        os.makedirs(pins, exist_ok=True)
        netns.run(["bpftool", "prog", "loadall", str(OBJECT), f"{pins}/progs",
                   "pinmaps", maps_dir(spec.name, node.name)])
        router = node.facts["router"]
        tunnel = self.routing(spec) == "tunnel"
        lines = [f"link add {HOST_DEV} type veth peer name {NET_DEV}",
                 f"link set {HOST_DEV} arp off up", f"link set {NET_DEV} arp off up",
                 f"addr add {router}/32 dev {HOST_DEV}",
                 # the node's own traffic to its pods and to Services: into cil_from_host
                 f"route replace {node.lease} dev {HOST_DEV} src {router}",
                 f"route replace {SERVICE_CIDRS[IPV4]} dev {HOST_DEV} src {router}"]
        router6 = node.facts.get("router6")
        if router6:  # the same for IPv6 (cilium_host is NOARP: no neighbour discovery on it)
            lines += [f"addr add {router6}/128 dev {HOST_DEV} nodad",
                      f"route replace {node.lease_v6} dev {HOST_DEV} src {router6}",
                      f"route replace {SERVICE_CIDRS[IPV6]} dev {HOST_DEV} src {router6}"]
        if tunnel:
            lines += [f"link add {VXLAN_DEV} type vxlan external dstport {VXLAN_PORT}",
                      f"link set {VXLAN_DEV} up"]
        node.ns.batch("ip", lines)
        # replies come back by whatever path the programs chose: no reverse-path filter
        node.ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0", f"net.ipv4.conf.{HOST_DEV}.rp_filter=0",
                    *(["net.ipv6.conf.all.forwarding=1"] if router6 else []))
        index = _ifindexes(node)
        maps.write(maps_dir(spec.name, node.name), [
            MapWrite(maps.NODE_CONFIG, bytes(4), maps.node_config(
                str(node.ip.ip), router, index[UNDERLAY_DEV], index[HOST_DEV],
                index[VXLAN_DEV] if tunnel else 0,
                str(node.ip_v6.ip) if router6 and node.ip_v6 else "", router6 or "")),
            *(MapWrite(maps.IPCACHE, maps.ipcache_key(host_prefix(address)),
                       maps.ipcache_value(maps.ID_HOST, None))
              for address in filter(None, (router, router6)))])
        _tc_attach(node, UNDERLAY_DEV, "ingress", "cil_from_netdev")
        _tc_attach(node, HOST_DEV, "egress", "cil_from_host")
        if tunnel:
            _tc_attach(node, VXLAN_DEV, "ingress", "cil_from_overlay")
        # pods leaving the cluster are masqueraded, as Cilium's iptables masquerading does
        # (no Service rule: those are BPF)
        comment = '-m comment --comment "cilium masquerade non-cluster"'
        for restore, cidr, lease in pod_ranges(spec, node):
            node.ns.run(restore, "--noflush", input="\n".join([
                "*nat", f":{MASQ_CHAIN} - [0:0]", f"-A POSTROUTING -j {MASQ_CHAIN}",
                f"-A {MASQ_CHAIN} -s {lease} ! -d {cidr} ! -o cilium_+ {comment} "
                "-j MASQUERADE", "COMMIT"]) + "\n")

    def add_peers(self, spec: ClusterSpec, node: NodeContext, peers: list[NodeContext]) -> None:
        # a peer's pod CIDR, and the peer itself (remote-node): both reached through it,
        # neither through this node's stack (whose masquerade would hide the pods)
        # (of each family: the tunnel endpoint is the peer's IPv4 address for both)
        writes = []
        for peer in peers:
            tunnel_endpoint = str(peer.ip.ip)
            for lease, address in self._peer_prefixes(node, peer):
                writes += [MapWrite(maps.IPCACHE, maps.ipcache_key(str(lease)),
                                    maps.ipcache_value(maps.ID_WORLD, tunnel_endpoint)),
                           MapWrite(maps.IPCACHE, maps.ipcache_key(host_prefix(address)),
                                    maps.ipcache_value(maps.ID_REMOTE_NODE, tunnel_endpoint))]
        maps.write(maps_dir(spec.name, node.name), writes)
        if self.routing(spec) == "native":  # autoDirectNodeRoutes, via the peer's address
            node.ns.batch("ip", [f"route replace {lease} via {address} dev {UNDERLAY_DEV}"
                                 for peer in peers
                                 for lease, address in self._peer_prefixes(node, peer)])
        else:  # the node's own traffic to remote pods: into cil_from_host, then the tunnel
            sources = {4: node.facts["router"], 6: node.facts.get("router6")}
            node.ns.batch("ip", [f"route replace {lease} dev {HOST_DEV} src "
                                 f"{sources[lease.version]} mtu {self.pod_mtu(spec)}"
                                 for peer in peers
                                 for lease, _ in self._peer_prefixes(node, peer)])

    @staticmethod
    def _peer_prefixes(node: NodeContext, peer: NodeContext) -> list[tuple]:
        """(pod CIDR, node address) of a peer, per family both nodes have."""
        out = [(peer.lease, peer.ip.ip)]
        if node.lease_v6 is not None and peer.lease_v6 is not None and peer.ip_v6 is not None:
            out.append((peer.lease_v6, peer.ip_v6.ip))
        return out

    def add_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        self.add_peers(spec, node, [peer])

    def remove_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        prefixes = self._peer_prefixes(node, peer)
        maps.write(maps_dir(spec.name, node.name),
                   [MapWrite(maps.IPCACHE, maps.ipcache_key(prefix))
                    for lease, address in prefixes
                    for prefix in (str(lease), host_prefix(address))])
        for lease, _ in prefixes:
            node.ns.run("ip", "route", "del", str(lease), check=False)

    def network_config(self, spec: ClusterSpec, node: NodeContext) -> dict:
        config = {
            "cniVersion": "1.0.0",
            "name": NETWORK_NAME,
            "type": PLUGIN_TYPE,
            "mtu": self.pod_mtu(spec),
            "router": node.facts["router"],
            "ipam": {"type": "host-local",
                     "dataDir": os.path.join(node.dir, "cni", "networks"),
                     # a range per family; its first address is cilium_host's
                     "ranges": [[{"subnet": str(lease), "rangeStart": str(lease[2])}]
                                for lease in node.leases]},
        }
        if "router6" in node.facts:
            config["router6"] = node.facts["router6"]
        return config

    # --- pods ----------------------------------------------------------------------------------
    def identity(self, namespace: str, labels: dict) -> int:
        """A numeric security identity per label set (namespace included), as Cilium's
        allocator gives them: the same labels, the same number, on every node."""
        key = (namespace, tuple(sorted(labels.items())))
        if key not in self.identities:
            self.identities[key] = maps.FIRST_IDENTITY + len(self.identities)
        return self.identities[key]

    def pod_added(self, cluster: ClusterContext, pod: PodSpec, node: NodeContext,
                  record: PodRecord) -> None:
        host, sandbox = record.result["interfaces"][:2]
        ident = self.identity(pod.namespace, record.labels)
        _tc_attach(node, host["name"], "ingress", "cil_from_container")
        ifindex = node.ns.ip_json("link", "show", "dev", host["name"])[0]["ifindex"]
        value = maps.endpoint_value(ifindex, ident, sandbox["mac"], host["mac"])
        maps.write(maps_dir(cluster.spec.name, node.name),
                   [MapWrite(maps.ENDPOINTS, maps.endpoint_key(ip), value) for ip in record.ips])
        self.pod_ips[pod.key] = list(record.ips)
        for ip in record.ips:
            self._propagate(cluster, MapWrite(maps.IPCACHE, maps.ipcache_key(host_prefix(ip)),
                                              maps.ipcache_value(ident, str(node.ip.ip))))

    def pod_removed(self, cluster: ClusterContext, pod: PodSpec, node: NodeContext) -> None:
        ips = self.pod_ips.pop(pod.key, None)
        if not ips:
            return
        maps.write(maps_dir(cluster.spec.name, node.name),
                   [MapWrite(maps.ENDPOINTS, maps.endpoint_key(ip)) for ip in ips])
        for ip in ips:
            self._propagate(cluster, MapWrite(maps.IPCACHE, maps.ipcache_key(host_prefix(ip))))

    def _propagate(self, cluster, write: MapWrite) -> None:
        """A pod's ipcache entry to every node, as Cilium's agents learn each other's
        endpoints. Pods come up side by side: whoever finds no write under way writes
        everything queued so far (one bpftool per node) until the queue is empty, so that
        each entry is everywhere when the last pod_added returns. Routing never waits for
        these: a peer's pod CIDR entry already leads to the right node."""
        with self._lock:
            self._ipcache_pending.append(write)
            if self._ipcache_flushing:
                return
            self._ipcache_flushing = True
        try:
            while True:
                with self._lock:
                    batch, self._ipcache_pending = self._ipcache_pending, []
                    if not batch:  # done: in the same breath as a new write would look
                        self._ipcache_flushing = False
                        return
                latest = list({w.key: w for w in batch}.values())  # the last word per key
                maps.write_many({maps_dir(cluster.spec.name, n): latest
                                 for n in cluster.nodes})
        except BaseException:
            with self._lock:
                self._ipcache_flushing = False
            raise

    # --- teardown and what it shows ------------------------------------------------------------
    def stop(self, cluster: ClusterContext) -> None:
        """The pins go; the programs go with their devices when the nodes do."""
        shutil.rmtree(cluster_pins(cluster.spec.name), ignore_errors=True)

    def datapath_tables(self, state: RunState, node: str) -> str | None:
        facts, pinned = state.nodes[node].facts, maps_dir(state.name, node)
        if not os.path.isdir(pinned):
            raise TestbedError(f"{node} has no BPF maps pinned at {pinned}: cluster "
                               f"{state.name} is {state.status}")
        return report.report(state, node, pinned, report.attached_programs(
            state, node, facts.get("routing") == "tunnel"))

    def datapath_trace(self, state: RunState, node: str, in_port: str, flow: dict) -> list[str]:
        facts, pinned = state.nodes[node].facts, maps_dir(state.name, node)
        try:
            return explain.explain(state, node, pinned, in_port, flow,
                                   facts.get("routing") == "tunnel")
        except CommandError:  # the maps went with the cluster meanwhile
            return []

    def describe_node(self, node: NodeContext) -> dict:
        return {"lease": ",".join(map(str, node.leases)), "routing": node.facts.get("routing"),
                "bpf_pins": pin_dir(node.facts.get("cluster", ""), node.name)}
