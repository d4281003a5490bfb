"""The interface every CNI mode implements, and the registry that finds modes by name.

Shaped like flannel's pkg/backend: the cluster asks a mode to plan leases, set up each node,
learn and forget peers, give the network config pods attach with, and start/stop its daemons.
"""
import importlib
import ipaddress
import os
import pkgutil
import sys

from testbed.errors import TestbedError
from testbed.host.daemons import DaemonRecord
from testbed.host.probes import SHARED, Probe, cni_plugin
from testbed.kubeproxy.applier import ProxyApplier
from testbed.kubeproxy.modes import get_proxy_mode
from testbed.model.context import ClusterContext, NodeContext
from testbed.model.records import PodRecord
from testbed.model.spec import OptionReader, Section
from testbed.model.state import RunState
from testbed.model.topology import IPV4, IPV6, ClusterSpec, PodSpec

UNDERLAY_DEV = "eth0"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def pod_ranges(spec: ClusterSpec, node: NodeContext) -> list[tuple[str, Network, Network]]:
    """(restore command, the cluster's pod CIDR, the node's lease) of each family the node has
    a lease of: what a mode's masquerade rules are written per family with."""
    return [(restore, cidr, lease) for restore, cidr, lease in (
        ("iptables-restore", spec.pod_cidr, node.lease),
        ("ip6tables-restore", spec.pod_cidr_v6, node.lease_v6))
        if cidr is not None and lease is not None]


class Mode:
    """Base class of a CNI mode; subclasses register with @register."""
    name = ""
    summary = ""
    # doctor probe names this mode cannot work without (shared or its own)
    requires: tuple[str, ...] = ()
    probes: tuple[Probe, ...] = ()  # doctor's checks of what only this mode needs
    # the mode's own CNI plugins: {executable on CNI_PATH: the module run as it}; the install
    # step writes a launcher for each (python -m testbed.modes plugins lists them)
    cni_plugins: dict[str, str] = {}
    # the topology keys the mode owns, each with the reader of its section (a
    # model.spec.Section -> the mode's options); read with the topology, looked up by option()
    options: dict[str, OptionReader] = {}
    encap_overhead = 0  # bytes the datapath adds per packet; pod MTU = underlay MTU - this
    datapath = ""       # how packets move, recorded with benchmark results
    # where NetworkPolicy can be enforced: "routed" (pods on routed interfaces, Calico's
    # Felix), "bridged" (pods on a bridge, as Canal puts Felix on flannel's), or None
    policy_hook = None
    policy_by_default = False  # whether the real plugin enforces NetworkPolicy itself
    policy_note = "this mode's datapath bypasses the node's packet filter"
    adoptable = False  # a new owner can take the cluster over from the records (adopt.py)
    # what serves Services instead of kube-proxy, for a mode whose datapath holds them: a
    # kubeproxy.applier.ProxyApplier subclass, made by service_proxy(); None: kube-proxy
    kube_proxy_replacement = None
    routing_daemon = ""  # what routing_sessions() shows, for its heading
    # the topology's ipFamily values the mode builds, and why not the others (doctor, refusals)
    ip_families: tuple[str, ...] = ("ipv4",)
    ip_family_note = "this mode builds IPv4 only"

    @classmethod
    def own_probes(cls) -> tuple[Probe, ...]:
        """The mode's probes, and one for each CNI plugin of its own."""
        return cls.probes + tuple(
            cni_plugin(plugin, f"pods of the {cls.name} mode (the testbed's plugin, made by "
                       "scripts/install.sh)") for plugin in cls.cni_plugins)

    def option(self, spec: ClusterSpec, key: str) -> object:
        """The options under topology key `key` (one of self.options): as read with the
        topology, or the reader's defaults for a spec made without the modes' readers."""
        found = spec.options.get(key)
        if found is None:
            found = self.options[key](Section(spec.path, key, None, spec))
        return found

    def describe_datapath(self, spec: ClusterSpec, caps: dict) -> str:
        """How packets move in this cluster (caps: doctor's), recorded with benchmark results."""
        return self.datapath

    def check(self, spec: ClusterSpec) -> None:
        """Refuse a topology the mode cannot wire, before anything is built."""

    def check_families(self, spec: ClusterSpec) -> None:
        """Refuse the cluster's IP families where the mode does not build them."""
        if spec.ip_family not in self.ip_families:
            raise TestbedError(f"{spec.path}: ipFamily {spec.ip_family}: mode {self.name} "
                               f"cannot build it: {self.ip_family_note} (it builds "
                               f"{', '.join(self.ip_families)})")

    def plan(self, spec: ClusterSpec) -> dict:
        """{node name: pod subnet}"""
        raise NotImplementedError

    def plan_v6(self, spec: ClusterSpec) -> dict:
        """{node name: IPv6 pod subnet} in a cluster with IPv6 (a mode that builds it)."""
        return {}

    def plan_leases(self, spec: ClusterSpec) -> tuple[dict, dict]:
        """({node: IPv4 pod subnet}, {node: IPv6 pod subnet}) for the cluster's families: an
        IPv6-only cluster's nodes have no IPv4 lease (flannel's EnableIPv4: false), though
        the underlay keeps IPv4 as kind's nodes do."""
        return (self.plan(spec) if IPV4 in spec.families else {},
                self.plan_v6(spec) if IPV6 in spec.families else {})

    def pod_mtu(self, spec: ClusterSpec) -> int:
        return spec.mtu - self.encap_overhead

    def prepare(self, cluster: ClusterContext) -> None:
        """Before any node is set up: what the nodes share outside their namespaces."""

    def setup_node(self, spec: ClusterSpec, node: NodeContext) -> None:
        """Create the node's own datapath objects."""

    def add_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        """Make `node` reach the pods of `peer`."""

    def add_peers(self, spec: ClusterSpec, node: NodeContext, peers: list[NodeContext]) -> None:
        """add_peer for each peer; a mode whose peers are kernel objects writes them in one
        batch (one process per node, not one per object)."""
        for peer in peers:
            self.add_peer(spec, node, peer)

    def remove_peer(self, spec: ClusterSpec, node: NodeContext, peer: NodeContext) -> None:
        """Undo add_peer."""

    def service_proxy(self, cluster: ClusterContext) -> object | None:
        """The kube_proxy_replacement serving this cluster's Services."""
        return None

    def network_config(self, spec: ClusterSpec, node: NodeContext) -> dict:
        """The CNI network configuration (a dict) pods on `node` are attached with."""
        raise NotImplementedError

    def start(self, cluster: ClusterContext) -> None:
        """Start the mode's daemons, once every node is set up."""

    def stop(self, cluster: ClusterContext) -> None:
        """Stop what start() started."""

    def daemons(self, cluster: ClusterContext) -> dict[str, int]:
        """{label: pid} of the mode's own processes, whose CPU a benchmark reports apart."""
        return {}

    def daemon_status(self, cluster: ClusterContext) -> dict[str, DaemonRecord]:
        """{label: {"node", "pid", "alive", "state"}} of the mode's own processes."""
        return {}

    def restart_daemon(self, cluster: ClusterContext, node_name: str) -> None:
        raise TestbedError(f"mode {self.name} runs no daemon to restart")

    def adopt(self, cluster: ClusterContext) -> None:
        """Take over the daemons a dead owner started (their labels are in the records);
        nothing is started or changed."""

    def describe_node(self, node: NodeContext) -> dict:
        """Short facts of a node for its record (`lease` is shown by `testbed get nodes`)."""
        return {}

    # --- what a mode may show; the defaults are for a mode with nothing to show -----------
    def stats(self, node: NodeContext | None = None) -> dict:
        """Counters of the mode's userspace datapath (a node's forwarder, the controller)."""
        return {}

    def routing_sessions(self, state: RunState, host: str) -> str | None:
        """What the mode's routing daemon says of its sessions on a node or router, read
        through the run's records (`testbed routes`); None when the mode routes without one."""
        return None

    def flow_bridges(self, state: RunState) -> dict[str, tuple[str, str]]:
        """{node: (bridge's management target, controller's control socket)} of the OVS
        bridges the mode's flows live in (`testbed flows`)."""
        return {}

    def datapath_tables(self, state: RunState, node: str) -> str | None:
        """The mode's own datapath tables of a node in readable form (`testbed bpf`); None
        for a mode whose datapath has none of its own."""
        return None

    def datapath_trace(self, state: RunState, node: str, in_port: str,
                       flow: dict) -> list[str]:
        """How the mode's own datapath on a node handles a packet that entered it on
        `in_port` (flow: protocol, src, dst, sport, dport, ttl), one line per step
        (`testbed trace`); empty when the kernel's tables tell it all."""
        return []

    def pod_added(self, cluster: ClusterContext, pod: PodSpec, node: NodeContext,
                  record: PodRecord) -> None:
        """A pod was attached (record: the runtime's, with the CNI result)."""

    def pod_removed(self, cluster: ClusterContext, pod: PodSpec, node: NodeContext) -> None:
        """A pod is about to be detached."""


DEFAULT = "vxlan"  # the mode `testbed up` runs when neither it nor the topology names one

_REGISTRY: dict[str, type[Mode]] = {}


def register(cls: type[Mode]) -> type[Mode]:
    """Add a mode to the registry (a class decorator). Refused: a name taken, a topology key
    another mode reads with another reader, a requirement no doctor probe looks for."""
    if cls.name in _REGISTRY:
        raise RuntimeError(f"CNI mode {cls.name} registered twice")
    for key, read in cls.options.items():
        other = next((m for m in _REGISTRY.values() if m.options.get(key, read) is not read),
                     None)
        if other is not None:
            raise RuntimeError(f"CNI mode {cls.name} reads topology key {key!r}, which mode "
                               f"{other.name} reads otherwise")
    known = {probe.name for probe in SHARED + cls.own_probes()}
    unknown = [name for name in cls.requires if name not in known]
    if unknown:
        raise RuntimeError(f"CNI mode {cls.name} requires {unknown[0]!r}, which no doctor probe "
                           "looks for (declare it in the mode's probes)")
    _REGISTRY[cls.name] = cls
    return cls


MODES_PATH = "TESTBED_MODES_PATH"  # more folders holding mode folders, as PATH is written


def _mode_folders() -> list[str]:
    """Where mode folders are: beside this module, then the folders TESTBED_MODES_PATH names
    (a mode kept out of the tree: every process of the run, plugins too, inherits it)."""
    package = sys.modules["testbed.modes"]
    for extra in os.environ.get(MODES_PATH, "").split(os.pathsep):
        if extra and os.path.abspath(extra) not in package.__path__:
            package.__path__.append(os.path.abspath(extra))
    return list(package.__path__)


def _discover() -> None:
    """Import every mode package in the mode folders and the modules it names as registering
    modes (a package may register in its own __init__), so that adding a mode is adding a
    folder."""
    for info in pkgutil.iter_modules(_mode_folders()):
        if info.ispkg:
            package = importlib.import_module(f"testbed.modes.{info.name}")
            for module in getattr(package, "REGISTERING", ()):
                importlib.import_module(f"testbed.modes.{info.name}.{module}")


def cni_plugins() -> dict[str, str]:
    """Every registered mode's own CNI plugins: {executable: module}."""
    _discover()
    return {name: module for cls in _REGISTRY.values()
            for name, module in cls.cni_plugins.items()}


def option_readers() -> dict[str, OptionReader]:
    """{topology key: its reader} of every registered mode's options, for the spec to read
    (model.spec.load's `options`)."""
    _discover()
    return {key: read for cls in _REGISTRY.values() for key, read in cls.options.items()}


def services_by(mode_name: str | None, proxy_mode: str) -> type[ProxyApplier]:
    """The applier class that serves Services in a run of CNI mode `mode_name` (any name,
    a bare underlay's too): the mode's replacement of kube-proxy, else kube-proxy in
    `proxy_mode`."""
    _discover()
    mode = _REGISTRY.get(mode_name or "")
    if mode is not None and mode.kube_proxy_replacement is not None:
        return mode.kube_proxy_replacement
    return get_proxy_mode(proxy_mode)


def probes() -> list[Probe]:
    """Every registered mode's own probes, each once (a subclass shares its base's)."""
    _discover()
    found: dict[str, Probe] = {}
    for name in sorted(_REGISTRY):
        for probe in _REGISTRY[name].own_probes():
            found.setdefault(probe.name, probe)
    return list(found.values())


def mode_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_mode(name: str) -> Mode:
    _discover()
    if name not in _REGISTRY:
        raise TestbedError(f"unknown CNI mode {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]()
