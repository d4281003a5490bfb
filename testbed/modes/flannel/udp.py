"""Flannel's udp backend: TUN device flannel0 and a userspace forwarder per node.

Per node (as flannel-io/flannel backend/udp builds it): TUN `flannel0` with the lease's network
address as /32, MTU = underlay - 28, and a route for the whole cluster CIDR to flannel0 (the
node's own lease stays on cni0, a longer prefix). The forwarder (native/, a small C program
built by the install step, as flannel's own loop is C) carries each packet as one UDP datagram
to the owning node's port 8285. Its peer table is changed at run time over a control socket.

The `udp` mode runs the forwarder as flannel's proxy runs: one packet per system call, the TTL
decremented both ways, ICMP net-unreachable from flannel0's own address, the kernel's default
socket buffers (see native/flannel-udp-forwarder.c). The `udp-gso` mode is the same wire with
a modern userspace tunnel's loop (as wireguard-go's or Tailscale's): packets cross the kernel
boundary in bundles (TSO super-packets from flannel0, UDP GSO out, UDP GRO in, TCP segments
joined again before flannel0), one inner packet per datagram still. `udp: {offload: true}` in
a topology makes `udp` run that loop too.
"""
import json
import os
import shutil
from dataclasses import dataclass

from testbed import BUILD
from testbed.errors import TestbedError
from testbed.host import rpc
from testbed.host.daemons import Daemon, DaemonRecord, socket_ready
from testbed.host.probes import Probe
from testbed.model.context import ClusterContext, NodeContext
from testbed.model.spec import Section
from testbed.model.topology import ClusterSpec
from testbed.modes.base import register
from testbed.modes.flannel.base import FlannelMode

TUN_DEV = "flannel0"
PORT = 8285
FORWARDER = "flannel-udp-forwarder"
BUILD_DIR = BUILD
READY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class UdpOptions:
    offload: bool = False  # the forwarder moves TSO/GSO/GRO bundles (udp-gso)


def read_udp(section: Section) -> UdpOptions:
    """`udp: {offload: true|false}`."""
    section.fields({"offload"})
    return UdpOptions(section.boolean("offload", False))


def forwarder_path() -> str | None:
    """The forwarder binary: the one the install step built, else one on PATH."""
    built = BUILD_DIR / FORWARDER
    if os.access(built, os.X_OK):
        return str(built)
    return shutil.which(FORWARDER)


def control(sock_path: str, command: str, timeout: float = 2.0) -> str:
    """Send one command to a forwarder's control socket; returns its one-line reply."""
    reply = rpc.datagram(sock_path, command, timeout)
    if reply.startswith("error"):
        raise TestbedError(f"forwarder {sock_path}: {command!r}: {reply}")
    return reply


@register
class UdpMode(FlannelMode):
    name = "udp"
    summary = "flannel udp: TUN flannel0 and a userspace UDP forwarder on port 8285"
    requires = FlannelMode.requires + ("tun", FORWARDER)
    probes = (Probe(FORWARDER, "binary", "the flannel udp mode (built by scripts/install.sh)"),)
    encap_overhead = 28  # outer IPv4 20 + UDP 8: the pod packet travels whole in one datagram
    datapath = "userspace: TUN flannel0 + C forwarder over UDP 8285, Linux bridge cni0"

    options = {**FlannelMode.options, "udp": read_udp}
    ip_families = ("ipv4",)
    ip_family_note = "flannel's udp backend carries IPv4 only: its lease has no IPv6 " \
        "attributes and flannel0 is an IPv4 TUN (flannel pkg/backend/udp); use vxlan or host-gw"
    offload = None  # the loop: None as the topology says (udp.offload), else fixed

    def bundles(self, spec: ClusterSpec) -> bool:
        """Whether the forwarders move bundles (udp-gso) or one packet per call (flannel's)."""
        return self.option(spec, "udp").offload if self.offload is None else self.offload

    def describe_datapath(self, spec: ClusterSpec, caps: dict) -> str:
        how = ("TSO/GSO/GRO bundles" if self.bundles(spec)
               else "one packet per system call, as flannel's")
        return f"{self.datapath}; forwarder moves {how}"

    def __init__(self):
        self.forwarders = {}  # node name -> Daemon

    def setup_backend(self, spec: ClusterSpec, node: NodeContext) -> None:
        run = node.ns.run
        run("ip", "tuntap", "add", "dev", TUN_DEV, "mode", "tun")
        run("ip", "link", "set", TUN_DEV, "mtu", spec.mtu - self.encap_overhead)
        run("ip", "addr", "add", f"{node.lease.network_address}/32", "dev", TUN_DEV)
        run("ip", "link", "set", TUN_DEV, "up")
        run("ip", "route", "replace", spec.pod_cidr, "dev", TUN_DEV)
        node.facts["control"] = os.path.join(node.dir, "udp-forwarder.sock")
        node.facts["peers"] = {}

    # --- peers -----------------------------------------------------------------------------
    def add_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        node.facts["peers"][str(peer.lease)] = str(peer.ip.ip)
        if node.name in self.forwarders:
            control(node.facts["control"], f"add {peer.lease} {peer.ip.ip}")

    def remove_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        node.facts["peers"].pop(str(peer.lease), None)
        if node.name in self.forwarders:
            control(node.facts["control"], f"del {peer.lease}")

    # --- the forwarders --------------------------------------------------------------------
    def start(self, cluster: ClusterContext) -> None:
        for node in cluster.nodes.values():
            self.start_forwarder(cluster, node)

    def start_forwarder(self, cluster: ClusterContext, node: NodeContext) -> None:
        binary = forwarder_path()
        if not binary:
            raise TestbedError(f"{FORWARDER} is not built: run scripts/install.sh (it compiles "
                               "native/flannel-udp-forwarder.c)")
        sock = node.facts["control"]
        argv = [binary, "--tun", TUN_DEV, "--tun-addr", node.lease.network_address,
                "--listen", node.ip.ip, "--control", sock, "--port", PORT]
        argv += [] if self.bundles(cluster.spec) else ["--no-offload"]
        forwarder = Daemon(self._label(node), node.ns.argv(*argv),
                           os.path.join(node.dir, "udp-forwarder.log"))
        self.forwarders[node.name] = forwarder
        forwarder.start(cluster.state,
                        socket_ready(sock, lambda: control(sock, "stats", timeout=0.5)),
                        READY_TIMEOUT_S)
        node.facts["forwarder_pid"] = forwarder.pid
        for lease, ip in node.facts["peers"].items():
            control(sock, f"add {lease} {ip}")

    def adopt(self, cluster: ClusterContext) -> None:
        for node in cluster.nodes.values():
            forwarder = Daemon(self._label(node), [], os.path.join(node.dir,
                                                                   "udp-forwarder.log"))
            forwarder.take_over(cluster.state)
            self.forwarders[node.name] = forwarder

    @staticmethod
    def _label(node):
        return f"udp forwarder on {node.name}"

    def stop(self, cluster: ClusterContext) -> None:
        for forwarder in self.forwarders.values():
            forwarder.stop(cluster.state)
        self.forwarders = {}

    def restart_daemon(self, cluster: ClusterContext, node_name: str) -> None:
        """Start a node's forwarder again (after it died); it re-reads the peer table."""
        old = self.forwarders.pop(node_name, None)
        if old is not None:
            old.stop(cluster.state)
        self.start_forwarder(cluster, cluster.nodes[node_name])

    def daemon_status(self, cluster: ClusterContext) -> dict[str, DaemonRecord]:
        """{label: {"node", "pid", "alive", "state"}} of every forwarder."""
        return {f"forwarder@{name}": f.status(name) for name, f in self.forwarders.items()}

    def daemons(self, cluster: ClusterContext) -> dict[str, int]:
        return {f"forwarder@{name}": f.pid for name, f in self.forwarders.items()}

    def stats(self, node: NodeContext | None) -> dict:
        return json.loads(control(node.facts["control"], "stats"))

    def describe_node(self, node: NodeContext) -> dict:
        return {**super().describe_node(node), "forwarder_pid": node.facts.get("forwarder_pid")}


@register
class UdpGsoMode(UdpMode):
    """flannel's udp wire format with a modern userspace tunnel's loop: what a forwarder that
    moves bundles (TSO, UDP GSO and GRO) reaches over the same datagrams."""
    name = "udp-gso"
    summary = ("flannel udp's wire with bundles: TSO from flannel0, UDP GSO/GRO, one packet per "
               "datagram")
    offload = True
