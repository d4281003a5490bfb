"""The openflow mode: an SDN CNI in the style of Antrea, driven by one os-ken controller.

Per node (its own ovsdb-server and ovs-vswitchd in the node's namespace, see ovs.py):
  br-int   OVS bridge, fail-mode secure, flows only from the controller (controllers/podnet.py)
  gw0      internal port of br-int with the lease's first address: the node's side of its pods
  tun0     VXLAN port (UDP 4789) whose remote end each flow chooses (remote_ip=flow)
  routes   <peer lease> via <peer gw0 address> dev gw0 onlink, for the node's own traffic
Pods attach with the testbed-ovs CNI plugin (a veth whose host side is a port of br-int,
addresses from host-local over the node's lease); the testbed then tells the controller.

With the userspace datapath, OVS sends tunnel packets itself and needs the node's underlay
device on a bridge of its own: eth0 becomes a port of br-phy and the node's address moves to
br-phy (OVS's documented userspace tunnelling set-up); the kernel datapath needs none of it.

Dual-stack, as Antrea builds it: gw0 also holds the IPv6 lease's first address, pods get an
address of each family (host-local, a range per family), and IPv6 pod traffic to another node
tunnels to that node's IPv6 address (Antrea picks the peer's node IP of the pod CIDR's
family). Per peer the node routes `<peer IPv6 lease> via <peer gw0 IPv6> dev gw0 onlink` and,
since no flow answers neighbour solicitations for it, holds a permanent neighbour entry for that
gateway with Antrea's global virtual MAC. The pod MTU loses 20 bytes more (underlay − 70), as
Antrea deducts for a node with an IPv6 address.
"""
import os
import re
import subprocess

from testbed.errors import CommandError, TestbedError
from testbed.host.daemons import DaemonRecord
from testbed.host.waiting import wait_until
from testbed.model import ipam
from testbed.model.context import ClusterContext, NodeContext
from testbed.model.records import PodRecord
from testbed.model.state import RunState
from testbed.model.topology import IPV6, ClusterSpec, PodSpec
from testbed.modes.base import UNDERLAY_DEV, Mode, register
from testbed.underlay import ovs
from testbed.underlay.controller import ControllerProcess

PLUGIN_TYPE = "testbed-ovs"
GLOBAL_VIRTUAL_MAC = "aa:bb:cc:dd:ee:ff"  # Antrea's: what a peer node's gateway resolves to
BRIDGE, GATEWAY, TUNNEL, PHYSICAL = "br-int", "gw0", "tun0", "br-phy"
VXLAN_PORT = 4789
FLOWS_TIMEOUT_S = 15.0


@register
class OpenflowMode(Mode):
    name = "openflow"
    summary = "SDN CNI: OVS br-int per node, VXLAN tunnels, flows from an os-ken controller"
    policy_note = "the openflow mode's flows switch pod traffic past the node's packet " \
        "filter; its NetworkPolicy would be OpenFlow rules (not built)"
    requires = ("veth", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "os-ken",
                f"cni/{PLUGIN_TYPE}", "cni/host-local")
    cni_plugins = {PLUGIN_TYPE: "testbed.modes.openflow.ovs_plugin"}
    encap_overhead = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
    ipv6_extra_overhead = 20  # an IPv6 outer header, deducted once the node has IPv6
    datapath = "OVS br-int per node, VXLAN tunnel port, flows from the os-ken controller"
    ip_families = ("ipv4", "dual")
    ip_family_note = "IPv6-only clusters are not built in the openflow mode"

    def __init__(self):
        self.controller = None
        self.switches = {}   # node name -> OvsInstance
        self.dp_type = None

    def describe_datapath(self, spec: ClusterSpec, caps: dict) -> str:
        return f"{self.datapath} ({ovs.describe_datapath(ovs.datapath_type(caps))})"

    def check(self, spec: ClusterSpec) -> None:
        ipam.check_lease_room(spec)

    def plan(self, spec: ClusterSpec) -> dict:
        return ipam.node_leases(spec)

    def plan_v6(self, spec: ClusterSpec) -> dict:
        return ipam.node_leases_v6(spec)

    def pod_mtu(self, spec: ClusterSpec) -> int:
        return super().pod_mtu(spec) - (self.ipv6_extra_overhead if spec.has_ipv6 else 0)

    def setup_node(self, spec: ClusterSpec, node: NodeContext) -> None:
        node.facts["gateway"] = str(node.lease[1])
        if node.lease_v6 is not None:
            node.facts["gateway_v6"] = str(node.lease_v6[1])
        node.facts["peers"] = {}

    # --- peers -----------------------------------------------------------------------------
    def add_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        node.facts["peers"][peer.name] = peer
        if self.controller is not None:
            self._route_to(node, peer)

    def remove_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        node.facts["peers"].pop(peer.name, None)
        if self.controller is not None:
            node.ns.run("ip", "route", "del", str(peer.lease), check=False)
            if peer.lease_v6 is not None:
                node.ns.run("ip", "-6", "route", "del", str(peer.lease_v6), check=False)
                node.ns.run("ip", "-6", "neigh", "del", peer.facts["gateway_v6"], "dev",
                            GATEWAY, check=False)
            self.controller.request("forget_node", name=peer.name)

    @staticmethod
    def _route_to(node, peer):
        commands = [f"route replace {peer.lease} via {peer.facts['gateway']} dev {GATEWAY} "
                    "onlink"]
        if peer.lease_v6 is not None and node.lease_v6 is not None:
            gateway = peer.facts["gateway_v6"]
            commands += [f"route replace {peer.lease_v6} via {gateway} dev {GATEWAY} onlink",
                         f"neigh replace {gateway} lladdr {GLOBAL_VIRTUAL_MAC} dev {GATEWAY} "
                         "nud permanent"]
        node.ns.batch("ip", commands)

    # --- start: controller, then each node's switch ----------------------------------------
    def start(self, cluster: ClusterContext) -> None:
        self.dp_type = ovs.datapath_type(cluster.caps)
        self.controller = ControllerProcess("openflow controller", ["podnet"],
                                            cluster.state.subdir("openflow"))
        self.controller.start(cluster.state)
        for index, node in enumerate(cluster.nodes.values(), start=1):
            self._start_switch(cluster, node, index)
        for node in cluster.nodes.values():
            for peer in node.facts["peers"].values():
                self._route_to(node, peer)
            self.controller.request("node", **self._node_facts(node))
        for node in cluster.nodes.values():
            self._wait_for_flow(node, "arp_tpa", node.facts["gateway"])
            if "gateway_v6" in node.facts:
                self._wait_for_flow(node, "ipv6_dst", node.facts["gateway_v6"])
        if self.dp_type == "netdev":
            self._resolve_tunnel_neighbours(cluster)
            self._full_checksums_outside(cluster)
        cluster.state.update(mode_facts={
            "datapath": self.dp_type, "description": self.describe_datapath(None, cluster.caps),
            "control_socket": self.controller.control_socket,
            "bridges": {n: sw.mgmt(BRIDGE) for n, sw in self.switches.items()}})

    def _start_switch(self, cluster, node, index):
        sw = ovs.OvsInstance(node.name, cluster.state.subdir("openflow", node.name),
                             lambda argv: node.ns.argv(*argv))
        self.switches[node.name] = sw
        sw.start(cluster.state)
        node.facts["ovsdb"] = f"unix:{sw.db_sock}"
        node.facts["dpid"] = f"{index:016x}"
        run = node.ns.run
        if self.dp_type == "netdev":
            self._underlay_on_bridge(sw, node)
        sw.add_bridge(BRIDGE, self.dp_type, [], self.controller.ofp_socket,
                      settings=[f"other-config:datapath-id={node.facts['dpid']}"])
        sw.vsctl("add-port", BRIDGE, GATEWAY, "--", "set", "interface", GATEWAY,
                 "type=internal",
                 "--", "add-port", BRIDGE, TUNNEL, "--", "set", "interface", TUNNEL,
                 "type=vxlan", "options:remote_ip=flow", f"options:dst_port={VXLAN_PORT}")
        self._wait_for_device(node, GATEWAY)
        run("ip", "link", "set", GATEWAY, "mtu", self.pod_mtu(cluster.spec))
        if self.dp_type == "netdev":
            run("ethtool", "-K", GATEWAY, "tx", "off")
        run("ip", "addr", "add", f"{node.facts['gateway']}/{node.lease.prefixlen}",
            "dev", GATEWAY)
        if node.lease_v6 is not None:  # usable at once: no other port may claim it
            run("ip", "addr", "add", f"{node.facts['gateway_v6']}/{node.lease_v6.prefixlen}",
                "dev", GATEWAY, "nodad")
        run("ip", "link", "set", GATEWAY, "up")
        node.facts["gateway_mac"] = node.ns.ip_json("link", "show", GATEWAY)[0]["address"]

    def _underlay_on_bridge(self, sw, node):
        """eth0 into br-phy, the node's address onto br-phy (userspace tunnelling)."""
        run = node.ns.run
        default = [r for r in node.ns.ip_json("route", "show", "default") if "gateway" in r]
        sw.vsctl("add-br", PHYSICAL, "--", "set", "bridge", PHYSICAL,
                 f"datapath_type={self.dp_type}", "fail-mode=standalone",
                 "--", "add-port", PHYSICAL, UNDERLAY_DEV)
        self._wait_for_device(node, PHYSICAL)
        for argv in ovs.userspace_port_argvs(UNDERLAY_DEV):
            run(*argv)
        run("ethtool", "-K", PHYSICAL, "tx", "off")
        default_v6 = [r for r in node.ns.ip_json("-6", "route", "show", "default")
                      if "gateway" in r] if node.ip_v6 is not None else []
        for address in filter(None, (node.ip, node.ip_v6)):
            run("ip", "addr", "del", str(address), "dev", UNDERLAY_DEV)
            run("ip", "addr", "add", str(address), "dev", PHYSICAL,
                *(["nodad"] if address.version == 6 else []))
        run("ip", "link", "set", PHYSICAL, "up")
        for route in default:
            run("ip", "route", "replace", "default", "via", route["gateway"], "dev", PHYSICAL)
        for route in default_v6:
            run("ip", "-6", "route", "replace", "default", "via", route["gateway"], "dev",
                PHYSICAL)

    @staticmethod
    def _resolve_tunnel_neighbours(cluster):
        """OVS's userspace tunnels drop the first packet to a tunnel destination whose next
        hop is not in their neighbour cache yet (and ask ARP for it): a few pings from each
        node to each peer's gateway, through the tunnel, fill the caches before pods talk."""
        pings = [subprocess.Popen(node.ns.argv("ping", "-c3", "-i0.1", "-W1", gateway),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for node in cluster.nodes.values() for peer in node.facts["peers"].values()
                 for gateway in (peer.facts["gateway"], peer.facts.get("gateway_v6"))
                 if gateway]
        for proc in pings:
            proc.wait()

    @staticmethod
    def _full_checksums_outside(cluster):
        """The hosts outside the nodes (rack routers, the external client) send TCP and UDP
        with the checksum left to the NIC (a veth's offload); OVS's userspace datapath
        forwards such packets into br-phy as they are, and the node's stack drops them
        uncounted (no conntrack entry, no NodePort or LoadBalancer reached). Their own
        stacks compute the checksums instead, as br-phy's does."""
        for host in (*cluster.routers.values(), *cluster.hosts.values()):
            for link in host.ip_json("link", "show"):
                if link["ifname"] != "lo":
                    host.run("ethtool", "-K", link["ifname"], "tx", "off")

    @staticmethod
    def _wait_for_device(node, name, timeout=5.0):
        if not wait_until(lambda: node.ns.run("ip", "-o", "link", "show", name, check=False),
                          timeout, 0.02):
            raise TestbedError(f"OVS did not create {name} on {node.name}")

    def _node_facts(self, node):
        facts = {"name": node.name, "dpid": node.facts["dpid"], "ip": str(node.ip.ip),
                 "lease": str(node.lease), "gateway_ip": node.facts["gateway"],
                 "gateway_mac": node.facts["gateway_mac"]}
        if node.lease_v6 is not None and node.ip_v6 is not None:
            facts.update(ip_v6=str(node.ip_v6.ip), lease_v6=str(node.lease_v6),
                         gateway_ip_v6=node.facts["gateway_v6"])
        return facts

    def _wait_for_flow(self, node, field, address):
        """Until the node's bridge holds a flow matching field=address (as ovs-ofctl prints)."""
        sw = self.switches[node.name]
        needle = f"{field}={address}"
        pattern = re.compile(re.escape(needle) + r"[ ,]")
        def controller_lives():
            if not self.controller.status().alive:
                raise TestbedError(f"the openflow controller died: see {self.controller.log}")

        if not wait_until(lambda: pattern.search(sw.ofctl("dump-flows", BRIDGE)),
                          FLOWS_TIMEOUT_S, check=controller_lives):
            raise TestbedError(f"{BRIDGE} on {node.name} got no flow for {needle} from the "
                               f"controller within {FLOWS_TIMEOUT_S:.0f} s "
                               f"(log: {self.controller.log})")

    # --- pods ------------------------------------------------------------------------------
    def network_config(self, spec: ClusterSpec, node: NodeContext) -> dict:
        return {
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": PLUGIN_TYPE,
            "mtu": self.pod_mtu(spec),
            "bridge": BRIDGE,
            "ovsdb": node.facts["ovsdb"],
            "gateway": node.facts["gateway"],
            "userspaceDatapath": self.dp_type == "netdev",
            "ipam": {
                "type": "host-local",
                "dataDir": os.path.join(node.dir, "cni", "networks"),
                # a range per family, each with gw0's address of that family as its gateway
                "ranges": [[{"subnet": str(lease), "gateway": str(lease[1])}]
                           for lease in node.leases],
            },
        }

    def pod_added(self, cluster: ClusterContext, pod: PodSpec, node: NodeContext,
                  record: PodRecord) -> None:
        host, sandbox = record.result["interfaces"][:2]
        ip_v6 = record.address(IPV6)
        self.controller.request("pod", node=node.name, name=pod.key, ip=record.ip,
                                mac=sandbox["mac"], port=host["name"],
                                **({"ip_v6": ip_v6} if ip_v6 else {}))
        self._wait_for_flow(node, "nw_dst", record.ip)
        if ip_v6:
            self._wait_for_flow(node, "ipv6_dst", ip_v6)

    def pod_removed(self, cluster: ClusterContext, pod: PodSpec, node: NodeContext) -> None:
        if self.controller is not None and self.controller.status().alive:
            self.controller.request("forget_pod", node=node.name, name=pod.key)

    # --- daemons ---------------------------------------------------------------------------
    def stop(self, cluster: ClusterContext) -> None:
        for sw in self.switches.values():
            sw.stop(cluster.state)
        self.switches = {}
        if self.controller is not None:
            self.controller.stop(cluster.state)
            self.controller = None

    def daemons(self, cluster: ClusterContext) -> dict[str, int]:
        pids = {"controller@openflow": self.controller.pid} if self.controller else {}
        for sw in self.switches.values():
            pids.update({d.label: d.pid for d in sw.daemons})
        return pids

    def daemon_status(self, cluster: ClusterContext) -> dict[str, DaemonRecord]:
        status = {"controller@openflow": self.controller.status()} if self.controller else {}
        for sw in self.switches.values():
            status.update(sw.status())
        return status

    def stats(self, node: NodeContext | None = None) -> dict:
        """The controller's counters (one controller serves every node)."""
        return self.controller.stats()

    def flow_bridges(self, state: RunState) -> dict[str, tuple[str, str]]:
        facts = state.mode_facts
        return {node: (mgmt, facts["control_socket"])
                for node, mgmt in facts.get("bridges", {}).items()}

    def datapath_trace(self, state: RunState, node: str, in_port: str, flow: dict) -> list[str]:
        """ofproto/trace of br-int on that node: the controller's tables the packet matches."""
        mgmt = state.mode_facts.get("bridges", {}).get(node)
        if mgmt is None:
            return []
        control = ovs.vswitchd_control(os.path.dirname(mgmt.removeprefix("unix:")), node)
        fields = [f"in_port={in_port}"]
        if flow.get("outer_src"):  # it came through the tunnel: br-int saw it on tun0
            fields = [f"in_port={TUNNEL}", f"tun_src={flow['outer_src']}",
                      f"tun_dst={flow['outer_dst']}", f"tun_id={flow.get('vni', 0)}"]
        if ":" in flow["src"]:  # IPv6: ovs-ofctl's icmp6/tcp6/udp6, ipv6_src and ipv6_dst
            fields += [flow["protocol"].lower().removesuffix("v6") + "6",
                       f"ipv6_src={flow['src']}", f"ipv6_dst={flow['dst']}"]
        else:
            fields += [flow["protocol"].lower(), f"nw_src={flow['src']}",
                       f"nw_dst={flow['dst']}"]
        fields.append(f"nw_ttl={flow['ttl']}")
        if flow["protocol"] in ("TCP", "UDP"):
            fields += [f"tp_src={flow['sport']}", f"tp_dst={flow['dport']}"]
        try:
            out = subprocess.run(["ovs-appctl", "-t", control, "ofproto/trace", BRIDGE,
                                  ",".join(fields)], capture_output=True, text=True,
                                 timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        try:
            ports = ovs.port_names(mgmt)
        except (CommandError, subprocess.TimeoutExpired):
            ports = {}
        return ovs.trace_summary(out, ports)

    def describe_node(self, node: NodeContext) -> dict:
        return {"lease": ",".join(map(str, node.leases)),
                "gateway": ",".join(filter(None, (node.facts.get("gateway"),
                                                  node.facts.get("gateway_v6"))))}
