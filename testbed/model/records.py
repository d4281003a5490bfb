"""What a run's state file holds, as typed records: the processes and objects the testbed owns,
and the nodes, pods, Services, Deployments, namespaces, policies and daemons of the cluster.

Records are plain dataclasses; `encode` turns one into JSON-shaped data and `decode` reads it
back by the field types, so the state file stays a readable JSON document and a field added
later is simply absent (its default) in an older file. Keys a newer file has and this code
does not know are ignored.
"""
import dataclasses
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from testbed.host.daemons import DaemonRecord  # noqa: F401  (a field type of RunState)
from testbed.host.processes import Process
from testbed.manifests.families import family_of
from testbed.manifests.kinds import NetworkPolicy, policy_from_record, policy_to_record


@dataclass
class ContainerProcess(Process):
    command: list[str] = field(default_factory=list)


@dataclass
class PodRecord:
    name: str
    namespace: str
    node: str
    netns: str                 # the sandbox: a named network namespace
    labels: dict[str, str] = field(default_factory=dict)
    netconf: dict = field(default_factory=dict)    # the CNI network config it was added with
    result: dict = field(default_factory=dict)     # the CNI ADD result
    ip: str | None = None
    containers: dict[str, ContainerProcess] = field(default_factory=dict)
    created: float = 0.0
    owner: str | None = None   # "namespace/name" of the Deployment that made it
    ports: dict[str, int] = field(default_factory=dict)  # named container ports
    spec: str | None = None    # the pod's containers as applied, to tell a changed template
    dns: dict = field(default_factory=dict)  # dnsPolicy, dnsConfig, hostname, subdomain
    host_network: bool = False  # its "sandbox" names its node's own network namespace
    secrets: str = ""  # its service-account volume, mounted in every command run in it
    # every address of the pod, in the order of the cluster's families (status.podIPs); `ip`
    # is the first
    ips: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def addresses(self) -> list[str]:
        """Its addresses (a record older than `ips`: its one `ip`)."""
        return self.ips or ([self.ip] if self.ip else [])

    def address(self, family: str) -> str | None:
        """Its address of an IP family ("IPv4", "IPv6"), None when it has none."""
        return next((a for a in self.addresses if family_of(a) == family), None)


@dataclass
class NodeRecord:
    pid: int                   # the node's Mininet shell
    ip: str                    # on the underlay
    rack: str
    lease: str | None = None   # the node's pod subnet(s), as `get nodes` shows them
    details: dict = field(default_factory=dict)  # the mode's short facts (a VTEP MAC, ...)
    facts: dict = field(default_factory=dict)    # everything the mode knows of the node
    # its own addresses, which NetworkPolicy always lets reach its pods (set by enforcement)
    addresses: list[str] = field(default_factory=list)
    zone: str = ""             # topology.kubernetes.io/zone ("": the rack's name)
    ip_v6: str = ""            # its IPv6 underlay address, in a cluster with IPv6
    ipv6_only: bool = False    # in an IPv6-only cluster: the kubelet's --node-ip is IPv6

    @property
    def addresses_by_family(self) -> list[str]:
        """The addresses the kubelet reports (its --node-ip, as kind sets it: status.addresses,
        a hostNetwork pod's IPs): IPv4 then IPv6 on a dual-stack node, the IPv6 one alone in
        an IPv6-only cluster (whose underlay keeps IPv4 beside it, as kind's nodes do)."""
        if self.ipv6_only:
            return [self.ip_v6]
        return [self.ip] + ([self.ip_v6] if self.ip_v6 else [])

    @property
    def topology_zone(self) -> str:
        return self.zone or self.rack


@dataclass
class HostRecord:
    """A router or the external host."""
    pid: int
    ip: str | None = None


@dataclass
class ServicePortRecord:
    port: int
    target_port: int | str     # a number, or the name of a container port
    name: str = ""
    node_port: int = 0
    protocol: str = "TCP"


@dataclass
class EndpointAddressRecord:
    """An endpoint of a Service without a selector that is no pod: the API server behind
    default/kubernetes, at its node's address."""
    ip: str
    node: str = ""


@dataclass
class ServiceRecord:
    type: str = "ClusterIP"
    cluster_ip: str = ""       # "None": headless; "": none (ExternalName)
    selector: dict[str, str] = field(default_factory=dict)
    ports: list[ServicePortRecord] = field(default_factory=list)
    session_affinity: str = "None"
    external_name: str = ""
    load_balancer_ip: str = ""
    created: float = 0.0
    external_traffic_policy: str = ""   # "": not externally accessible
    internal_traffic_policy: str = "Cluster"
    external_ips: list[str] = field(default_factory=list)
    source_ranges: list[str] = field(default_factory=list)
    health_check_node_port: int = 0
    affinity_timeout: int = 10800
    topology_mode: str = ""    # annotation service.kubernetes.io/topology-mode ("Auto": on)
    addresses: list[EndpointAddressRecord] = field(default_factory=list)  # selectorless only
    # every ClusterIP, one per IP family in ip_families' order (cluster_ip is the first)
    cluster_ips: list[str] = field(default_factory=list)
    ip_families: list[str] = field(default_factory=list)  # "IPv4", "IPv6"
    ip_family_policy: str = ""                           # as the API server settled it
    # a LoadBalancer's addresses, one per IP family of the Service (load_balancer_ip: the
    # first), as MetalLB gives a dual-stack Service one of each pool's
    load_balancer_ips: list[str] = field(default_factory=list)

    @property
    def all_load_balancer_ips(self) -> list[str]:
        """Its LoadBalancer addresses (a record older than load_balancer_ips: its one)."""
        return self.load_balancer_ips or ([self.load_balancer_ip] if self.load_balancer_ip
                                          else [])

    @property
    def all_cluster_ips(self) -> list[str]:
        """Its ClusterIPs (a record older than cluster_ips: its one cluster_ip)."""
        return self.cluster_ips or ([self.cluster_ip] if self.cluster_ip not in ("", "None")
                                    else [])


@dataclass
class DeploymentRecord:
    replicas: int
    selector: dict[str, str] = field(default_factory=dict)
    replica_set: str = ""
    pods: list[str] = field(default_factory=list)


@dataclass
class NamespaceRecord:
    labels: dict[str, str] = field(default_factory=dict)
    created: float | None = None


@dataclass
class PolicyRecord:
    policy: NetworkPolicy
    created: float = 0.0


@dataclass
class DnsRecord:
    pod: str                   # "namespace/name" of the kube-dns pod
    server: str                # the Service address pods' resolv.conf names
    dir: str                   # NSD's configuration and zone
    serial: int = 1


@dataclass
class EventRecord:
    """Something that happened to an object, as kubectl's events say it."""
    time: float
    type: str      # Normal or Warning
    reason: str    # Scheduled, Started, Killing, PolicyApplied, DaemonDied, ...
    object: str    # kind/name: pod/<ns>/<name>, service/<ns>/<name>, daemon/<label>, ...
    message: str


@dataclass
class PolicyEnforcement:
    enforced: bool = False
    note: str = ""


@dataclass
class Owned:
    """Everything the run made that outlives a process: recorded before it is made."""
    netns: list[str] = field(default_factory=list)
    pids: list[Process] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


# --- JSON encoding by field types ---------------------------------------------------------
CODECS = {NetworkPolicy: (policy_to_record, policy_from_record)}


def encode(value: Any) -> Any:
    """JSON-shaped data (dicts, lists, scalars) of a record."""
    if type(value) in CODECS:
        return CODECS[type(value)][0](value)
    if dataclasses.is_dataclass(value):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.name.startswith("_")}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(kind: Any, value: Any) -> Any:
    """A value of type `kind` from JSON-shaped data (what encode() wrote)."""
    if value is None:
        return None
    if kind in CODECS:
        return CODECS[kind][1](value)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        # X | None, or a choice of scalars (int | str): the JSON value already has its type
        non_none = [a for a in args if a is not type(None)]
        return decode(non_none[0], value) if len(non_none) == 1 else value
    if dataclasses.is_dataclass(kind):
        return decode_fields(kind, value)
    if origin is dict:
        return {k: decode(args[1], v) for k, v in value.items()}
    if origin is list:
        return [decode(args[0], v) for v in value]
    return value


def check_record_fields(obj: object, names: Iterable[str]) -> None:
    """TypeError when a field of `obj` that holds a record (a dataclass, or None) was given
    something else, say a plain dict: caught where it is set, not when it is read back."""
    hints = typing.get_type_hints(type(obj))
    for name in names:
        hint = hints[name]
        # a record, or a record or None; containers of records are not looked into
        choices = typing.get_args(hint) if typing.get_origin(hint) in (
            typing.Union, types.UnionType) else (hint,)
        wanted = [t for t in choices if isinstance(t, type) and dataclasses.is_dataclass(t)]
        value = getattr(obj, name)
        if wanted and value is not None and not isinstance(value, tuple(wanted)):
            raise TypeError(f"{type(obj).__name__}.{name} must be a {wanted[0].__name__}, "
                            f"not {type(value).__name__}")


def decode_fields(kind: Any, value: dict, **extra: object) -> Any:
    """An instance of dataclass `kind` from a JSON object (unknown keys ignored)."""
    hints = typing.get_type_hints(kind)
    known = {f.name for f in dataclasses.fields(kind) if f.init}
    return kind(**{k: decode(hints[k], v) for k, v in value.items() if k in known}, **extra)
