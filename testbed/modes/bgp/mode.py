"""Calico-style BGP routing: cali veths without a bridge, /26 blocks, BIRD on every node.

Pods attach through the testbed's own CNI plugin (testbed/calico_plugin.py). Each node owns
/26 blocks (another when its pods outgrow one); BIRD announces them as blackhole routes and
programs what it learns into the kernel, so pod traffic is plainly routed, with no
encapsulation. Peering: full-mesh iBGP (Calico's default) unless the topology names route
reflectors. With several racks each rack is its own AS and peers by eBGP with the rack router
(Calico's AS-per-rack design), so pod routes cross racks — where host-gw cannot go.

Dual-stack: each node also owns /122 blocks of the IPv6 pod CIDR (Calico's IPv6 block size),
pods get an address of each family, and BIRD peers over the nodes' IPv6 addresses too, with
an ipv6 channel (bird.py).
"""
import os
import time

from testbed.errors import TestbedError
from testbed.host.daemons import DaemonRecord
from testbed.host.parallel import for_each
from testbed.host.probes import Probe
from testbed.host.waiting import wait_until
from testbed.model import ipam
from testbed.model.context import ClusterContext, NodeContext
from testbed.model.state import RunState
from testbed.model.topology import IPV4, IPV6, ClusterSpec
from testbed.modes.base import Mode, register
from testbed.modes.bgp.bird import NODE_AS, ROUTER_AS, BirdDaemon, birdc, node_config, router_config
from testbed.modes.bgp.options import read_bgp

PLUGIN_TYPE = "testbed-calico"
NETWORK_NAME = "k8s-pod-network"  # the network name in Calico's CNI config
LINK_LOCAL_GATEWAY = "169.254.1.1"
CONVERGENCE_TIMEOUT_S = 60.0


@register
class BgpMode(Mode):
    name = "bgp"
    summary = "Calico-style: cali veths, /26 blocks, BIRD (BGP full mesh or route reflectors)"
    requires = ("veth", "bird", "birdc", f"cni/{PLUGIN_TYPE}")
    probes = (Probe("bird", "binary", "the Calico-style bgp mode (BIRD 2)"),
              Probe("birdc", "binary", "the Calico-style bgp mode (BIRD's control client)"))
    cni_plugins = {PLUGIN_TYPE: "testbed.modes.bgp.calico_plugin",
                   "testbed-calico-blocks": "testbed.modes.bgp.ipam_plugin"}
    options = {"bgp": read_bgp}
    adoptable = True
    policy_hook, policy_by_default = "routed", True  # Calico enforces NetworkPolicy
    datapath = "kernel: IP routes from BIRD (BGP), cali veths with proxy ARP, no bridge"
    ip_families = ("ipv4", "ipv6", "dual")

    def __init__(self):
        self.birds = {}  # node or router name -> BirdDaemon
        self.blocks: dict[str, list] = {}
        self.blocks_v6: dict[str, list] = {}

    def plan(self, spec: ClusterSpec) -> dict:
        try:  # an IP pool per family of the cluster (an IPv6-only one has no IPv4 pool)
            if IPV4 in spec.families:
                self.blocks = ipam.calico_blocks(spec)
            if IPV6 in spec.families and spec.pod_cidr_v6 is not None:
                self.blocks_v6 = ipam.calico_blocks(spec, ipam.CALICO_BLOCK_PREFIX_V6,
                                                    spec.pod_cidr_v6)
        except ValueError as e:
            raise TestbedError(f"{spec.path}: {e}")
        return {name: blocks[0] for name, blocks in self.blocks.items()}

    def plan_v6(self, spec: ClusterSpec) -> dict:
        self.plan(spec)
        return {name: blocks[0] for name, blocks in self.blocks_v6.items()}

    def _own_blocks(self, name):
        """A node's blocks, IPv4 ones first."""
        return [str(b) for b in self.blocks.get(name, []) + self.blocks_v6.get(name, [])]

    def check(self, spec: ClusterSpec) -> None:
        self.plan(spec)

    def setup_node(self, spec: ClusterSpec, node: NodeContext) -> None:
        node.facts["blocks"] = self._own_blocks(node.name)
        if node.lease is None:  # no IPv4 pool: no 169.254.1.1 gateway to answer for
            return
        # Pods' default gateway 169.254.1.1 is answered by proxy ARP, which the kernel does
        # only for an address it can route elsewhere. A Calico host has a default route for
        # that; nodes on a single rack have none here, so this host route plays its part.
        node.ns.run("ip", "route", "replace", f"{LINK_LOCAL_GATEWAY}/32", "dev", "lo")

    def network_config(self, spec: ClusterSpec, node: NodeContext) -> dict:
        return {
            "cniVersion": "1.0.0",
            "name": NETWORK_NAME,
            "type": PLUGIN_TYPE,
            "mtu": self.pod_mtu(spec),
            "ipam": {"type": "testbed-calico-blocks", "blocks": node.facts["blocks"],
                     "dataDir": os.path.join(node.dir, "calico-ipam")},
        }

    # --- BIRD --------------------------------------------------------------------------------
    def _node_as(self, spec, node):
        if not spec.has_router:
            return NODE_AS
        return ROUTER_AS + [r.name for r in spec.racks].index(node.rack) + 1

    def _peers(self, spec, node, nodes):
        """[(name, ip, as, rr_client)] of a node's BGP sessions."""
        reflectors = [n for n in self.option(spec, "bgp").route_reflectors
                      if nodes[n].rack == node.rack]
        same_rack = [p for p in nodes.values() if p is not node and p.rack == node.rack]
        if not reflectors:
            wanted = same_rack  # full mesh
        elif node.name in reflectors:
            wanted = same_rack  # a reflector talks to everyone in its rack
        else:
            wanted = [nodes[r] for r in reflectors]
        my_as = self._node_as(spec, node)
        peers = []
        # a session per family of the cluster: an IPv6-only cluster's nodes peer over IPv6
        # alone, as Calico's bird6 does where the node has no IPv4 address (IP=none)
        v4, v6 = IPV4 in spec.families, IPV6 in spec.families
        for p in wanted:
            name = f"node_{p.name}".replace("-", "_")
            client = bool(reflectors) and node.name in reflectors and p.name not in reflectors
            if v4:
                peers.append((name, p.ip.ip, my_as, client))
            if v6 and p.ip_v6 is not None:  # the same peering over IPv6, as bird6 has it
                peers.append((f"{name}_v6", p.ip_v6.ip, my_as, client))
        if spec.has_router:
            rack = spec.rack(node.rack)
            if v4:
                peers.append(("rack_router", rack.router_ip.ip, ROUTER_AS, False))
            if v6 and rack.router_ip_v6 is not None:
                peers.append(("rack_router_v6", rack.router_ip_v6.ip, ROUTER_AS, False))
        return peers

    def start(self, cluster: ClusterContext) -> None:
        spec, nodes = cluster.spec, cluster.nodes
        started = time.monotonic()
        bgp = self.option(spec, "bgp")
        for node in nodes.values():
            daemon = BirdDaemon(node.name, node.ns, os.path.join(node.dir, "bird"))
            daemon.write_config(node_config(
                node.ip.ip, node.facts["blocks"], self._node_as(spec, node),
                self._peers(spec, node, nodes), daemon.log,
                reflector=node.name in bgp.route_reflectors, hold=bgp.hold_time,
                node_ip_v6=node.ip_v6.ip if node.ip_v6 else None))
            self.birds[node.name] = daemon
            node.facts["bird_socket"] = daemon.socket
        if spec.has_router:
            router_ns = cluster.routers["router"]
            daemon = BirdDaemon("router", router_ns, cluster.state.subdir("router", "bird"))
            sessions = [(f"node_{n.name}".replace("-", "_"), spec.rack(n.rack).router_ip.ip,
                         n.ip.ip, self._node_as(spec, n)) for n in nodes.values()
                        if IPV4 in spec.families]
            sessions += [(f"node_{n.name}_v6".replace("-", "_"),
                          spec.rack(n.rack).router_ip_v6.ip, n.ip_v6.ip, self._node_as(spec, n))
                         for n in nodes.values() if n.ip_v6 is not None]
            daemon.write_config(router_config(spec.racks[0].router_ip.ip, sessions, daemon.log,
                                              hold=bgp.hold_time))
            self.birds["router"] = daemon
        for_each(self.birds.values(), lambda daemon: daemon.start(cluster.state))
        waiting = time.monotonic()
        cluster.timings["bgp_converged_s"] = self.wait_converged(cluster, started)
        cluster.timings["convergence_s"] = time.monotonic() - waiting

    def adopt(self, cluster: ClusterContext) -> None:
        for node in cluster.nodes.values():
            daemon = BirdDaemon(node.name, node.ns, os.path.join(node.dir, "bird"))
            daemon.take_over(cluster.state)
            self.birds[node.name] = daemon
            node.facts.update(blocks=self._own_blocks(node.name), bird_socket=daemon.socket)
        if "router" in cluster.routers:
            daemon = BirdDaemon("router", cluster.routers["router"],
                                cluster.state.subdir("router", "bird"))
            daemon.take_over(cluster.state)
            self.birds["router"] = daemon

    def wait_converged(self, cluster: ClusterContext, started: float,
                       timeout: float | None = None) -> float:
        """Seconds from BIRD's start until every node has a kernel route to every other block."""
        timeout = timeout or CONVERGENCE_TIMEOUT_S
        missing = []

        def converged():
            missing[:] = self.missing_routes(cluster)
            return not missing

        if not wait_until(converged, timeout, 0.1):
            raise TestbedError(f"BGP did not converge within {timeout:.0f} s: "
                               + "; ".join(missing[:5]))
        return time.monotonic() - started

    def missing_routes(self, cluster: ClusterContext) -> list[str]:
        """What the kernels lack of a converged cluster: "<node> lacks <block> of <peer>"."""
        out = []
        for node in cluster.nodes.values():
            have = node.ns.routed_networks()
            for peer in cluster.nodes.values():
                for block in peer.facts["blocks"] if peer is not node else []:
                    if block not in have:
                        out.append(f"{node.name} lacks {block} of {peer.name}")
        return out

    def stop(self, cluster: ClusterContext) -> None:
        for daemon in self.birds.values():
            daemon.stop(cluster.state)
        self.birds = {}

    def daemon_status(self, cluster: ClusterContext) -> dict[str, DaemonRecord]:
        return {f"bird@{name}": d.status(name) for name, d in self.birds.items()}

    def daemons(self, cluster: ClusterContext) -> dict[str, int]:
        return {f"bird@{name}": d.pid for name, d in self.birds.items() if d.pid}

    def restart_daemon(self, cluster: ClusterContext, node_name: str) -> None:
        daemon = self.birds.get(node_name)
        if daemon is None:
            raise TestbedError(f"no BIRD runs for {node_name}")
        daemon.stop(cluster.state)
        daemon.start(cluster.state)

    routing_daemon = "BIRD's BGP sessions (birdc show protocols)"

    def routing_sessions(self, state: RunState, host: str) -> str | None:
        """BIRD's protocols (`birdc show protocols`) of a node or of the rack router."""
        node = state.nodes.get(host)
        if node is not None:
            socket_path = node.details.get("bird_socket")
        elif host in state.routers:
            socket_path = os.path.join(state.dir, "router", "bird", "bird.ctl")
        else:
            return None
        if not socket_path or not os.path.exists(socket_path):
            return None
        return birdc(socket_path, "show", "protocols")

    def describe_node(self, node: NodeContext) -> dict:
        return {"lease": ",".join(node.facts.get("blocks", [])),
                "bird_socket": node.facts.get("bird_socket")}
