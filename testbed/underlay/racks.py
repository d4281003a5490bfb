"""The underlay: racks as L2 segments, nodes as Mininet hosts, a router between racks.

Each rack is a namespace of its own (a Mininet switch with inNamespace=True) holding a Linux
bridge, or with `underlay: ovs` an OVS bridge that the fabric (fabric.py) builds there. So the
root namespace gets no bridge, no address and no port of the emulation, and the host's
bridge-netfilter settings cannot touch emulated traffic.

Every namespace a shell holds is also pinned under /run/netns as `<node>.<cluster>` (and
`<rack>.<cluster>`), as `ip netns` names them: the datapath then outlives the process that
built it, as a real cluster's nodes outlive their control plane, and `ip netns exec node1.c1 …`
reaches a node from any shell.
"""
from collections.abc import Callable
from typing import Any

from mininet.link import Intf, Link, TCIntf, TCLink
from mininet.log import lg, setLogLevel
from mininet.net import Mininet
from mininet.node import Host, Node, Switch
from mininet.nodelib import LinuxBridge

from testbed.host import netns
from testbed.model.topology import EXTERNAL_NAME, ROUTER_NAME, ClusterSpec
from testbed.underlay.names import SHELL_LABEL, pinned_name

UNDERLAY_DEV = "eth0"


NAMESPACE_SYSCTLS = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
# hosts of a cluster with IPv6: IPv6 on, and forwarded as IPv4 is
IPV6_SYSCTLS = ("net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
                "net.ipv6.conf.all.forwarding=1")


class _HarmlessTcWarnings:
    """tc says htb's quantum is "big" at rates above ~1 Gbit/s; the shaping is still right."""

    def filter(self, record):
        return "quantum of class" not in record.getMessage()


lg.addFilter(_HarmlessTcWarnings())


class ShapedIntf(TCIntf):
    """Mininet's TCIntf, which ignores (with only a log line) rates above 1 Gbit/s; htb shapes
    veths at 10 Gbit/s and more, and the spec allows up to 100 Gbit/s."""
    bwParamMax = 100000


class ShapedLink(TCLink):
    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.update(cls1=ShapedIntf, cls2=ShapedIntf)
        super().__init__(*args, **kwargs)


class RackSwitch(LinuxBridge):
    """A rack's namespace holding the switch side of every link into the rack: Mininet's
    LinuxBridge, moved into a namespace of its own. What switches the rack is up to a subclass
    (a Linux bridge) or to the OVS fabric, which builds its bridge here afterwards."""

    def __init__(self, name: str, **params: Any):
        params.setdefault("dpid", "1")  # Mininet insists on one
        params["inNamespace"] = True
        LinuxBridge.__init__(self, name, stp=False, **params)

    @classmethod
    def setup(cls) -> None:
        """LinuxBridge checks for brctl and the root namespace's bridge-netfilter sysctls here;
        our racks use neither."""

    def connected(self) -> bool:
        return True

    def link_ends(self) -> list[Intf]:
        return [intf for intf in self.intfList() if intf.name != "lo"]

    def start(self, controllers: list) -> None:
        self.cmd("sysctl -qw", *NAMESPACE_SYSCTLS)
        for intf in self.link_ends():
            self.cmd("ip link set", intf.name, "up")

    def stop(self, deleteIntfs: bool = True) -> None:
        Switch.stop(self, deleteIntfs)


class RackBridge(RackSwitch):
    """A rack switched by a Linux bridge, driven with iproute2 (no brctl)."""

    def start(self, controllers: list) -> None:
        super().start(controllers)
        self.cmd("ip link add name", self.name, "type bridge")
        for intf in self.link_ends():
            self.cmd("ip link set", intf.name, "master", self.name)
        self.cmd("ip link set", self.name, "up")

    def stop(self, deleteIntfs: bool = True) -> None:
        self.cmd("ip link del", self.name)
        super().stop(deleteIntfs)


class Underlay:
    """Builds and stops the Mininet network of a ClusterSpec; owns nothing else."""

    def __init__(self, spec: ClusterSpec, on_process: Callable[[int, str], object] | None = None,
                 on_namespace: Callable[[str], object] | None = None, verbose: bool = False):
        self.spec = spec
        self.on_process = on_process or (lambda pid, what: None)
        # told a pinned namespace's name before it is made (the run's write-ahead record)
        self.on_namespace = on_namespace or (lambda name: None)
        self.net: Mininet | None = None
        setLogLevel("info" if verbose else "warning")

    def build(self) -> "Underlay":
        spec = self.spec
        rack_class = RackSwitch if spec.underlay == "ovs" else RackBridge
        self.net = Mininet(topo=None, switch=rack_class, controller=None, build=False,
                           autoSetMacs=False, waitConnected=False)
        switches = {}
        for rack in spec.racks:
            switches[rack.name] = self.net.addSwitch(rack.name, cls=rack_class)
            self._own(switches[rack.name], f"rack {rack.name}")
        for node in spec.nodes:
            host = self.net.addHost(node.name, cls=Host, ip=str(node.ip))
            self._own(host, f"node {node.name}")
            rack = spec.rack(node.rack)
            self._link(host, switches[rack.name], UNDERLAY_DEV, node.name, str(node.ip), rack)
        if spec.has_router:
            first = spec.racks[0]
            router = self.net.addHost(ROUTER_NAME, cls=Host, ip=str(first.router_ip))
            self._own(router, "rack router")
            for rack in spec.racks:
                self._link(router, switches[rack.name], rack.name, ROUTER_NAME,
                           str(rack.router_ip), rack)
        if spec.external_client:
            first = spec.racks[0]
            client = self.net.addHost(EXTERNAL_NAME, cls=Host, ip=str(spec.external_ip))
            self._own(client, "external client")
            self._link(client, switches[first.name], UNDERLAY_DEV, EXTERNAL_NAME,
                       str(spec.external_ip), first)
        self.net.build()
        self.net.start()
        return self

    def configure_hosts(self, on_done: Callable[[], object] = lambda: None) -> None:
        """Forwarding on, IPv6 off (on, with its addresses, in a cluster with IPv6), loopback
        up and (across racks) the default routes via the rack's router, in every host;
        on_done() after each."""
        spec = self.spec
        sysctls = IPV6_SYSCTLS if spec.has_ipv6 else NAMESPACE_SYSCTLS
        for host in self.net.hosts:
            # one round trip through the host's shell, not one per command
            commands = [f"sysctl -qw net.ipv4.ip_forward=1 {' '.join(sysctls)}",
                        "ip link set lo up"]
            for dev, address in self.addresses_v6(host.name):
                # nodad: the address is the topology's own, unique by construction
                commands.append(f"ip -6 addr add {address} dev {dev} nodad")
            for gateway in self.gateways(host.name):
                commands.append(f"ip {'-6 ' if gateway.version == 6 else ''}route replace "
                                f"default via {gateway}")
            host.cmd("; ".join(commands))
            on_done()

    def addresses_v6(self, host: str) -> list[tuple[str, str]]:
        """(device, IPv6 address) of a host in a cluster with IPv6: a node's or the external
        client's on eth0, the router's on its leg into each rack."""
        spec = self.spec
        if not spec.has_ipv6:
            return []
        if host == ROUTER_NAME:
            return [(rack.name, str(rack.router_ip_v6)) for rack in spec.racks]
        if host == EXTERNAL_NAME:
            return [(UNDERLAY_DEV, str(spec.external_ip_v6))]
        node = next((n for n in spec.nodes if n.name == host), None)
        return [(UNDERLAY_DEV, str(node.ip_v6))] if node and node.ip_v6 else []

    def gateways(self, host: str) -> list:
        """Across racks, a node's or the external client's default routes: its rack's
        router, in each family the underlay has."""
        spec = self.spec
        if not spec.has_router or host == ROUTER_NAME:
            return []
        node = next((n for n in spec.nodes if n.name == host), None)
        if node is None and host != EXTERNAL_NAME:
            return []
        rack = spec.rack(node.rack) if node else spec.racks[0]
        return [rack.router_ip.ip] + ([rack.router_ip_v6.ip] if rack.router_ip_v6 else [])

    def _own(self, shell_node, what):
        """Record a Mininet node's shell, then pin its namespace by name."""
        self.on_process(shell_node.pid, f"{SHELL_LABEL}{what}")
        name = pinned_name(shell_node.name, self.spec.name)
        self.on_namespace(name)
        netns.run(["ip", "netns", "attach", name, shell_node.pid])

    def _link(self, host, switch, host_intf, switch_intf, ip, rack):
        params = {"intfName1": host_intf, "intfName2": switch_intf, "params1": {"ip": ip}}
        shaping = {}
        if rack.bandwidth:
            shaping["bw"] = rack.bandwidth  # tc htb at both ends
        if rack.delay:
            shaping["delay"] = f"{rack.delay:g}ms"  # tc netem at both ends
        if shaping:
            self.net.addLink(host, switch, cls=ShapedLink, **shaping, **params)
        else:
            self.net.addLink(host, switch, cls=Link, **params)

    def host(self, name: str) -> Host:
        return self.net.get(name)

    def rack(self, name: str) -> RackSwitch:
        """The rack's RackSwitch (its namespace and the switch ends of its links)."""
        return self.net.get(name)

    @staticmethod
    def far_end(intf: Intf) -> tuple[Node, str]:
        """The other end of a link: (Mininet node, interface name)."""
        link = intf.link
        other = link.intf1 if link.intf2 is intf else link.intf2
        return other.node, other.name

    def stop(self) -> None:
        if self.net is not None:
            self.net.stop()
            self.net = None
