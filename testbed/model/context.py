"""What a mode, and kube-proxy, may use of a cluster and of each node: the topology, the run's
state, the nodes and routers by name, what the machine offers and the cluster's timings — not
the Cluster object that builds them (lifecycle/cluster.py), whose parts are none of theirs."""
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Any, Protocol

from testbed.host.netns import Namespace
from testbed.model.records import PodRecord
from testbed.model.state import RunState
from testbed.model.topology import ClusterSpec, PodSpec


@dataclass
class NodeContext:
    """What a mode may use of one node: its facts and a way to run commands in it."""
    name: str
    rack: str
    ip: IPv4Interface   # on the underlay device
    ns: Namespace       # the node's network namespace, to run commands in
    dir: str            # the node's own directory in the run directory
    lease: IPv4Network | None = None  # the node's pods' subnet, set from the mode's plan
    facts: dict = field(default_factory=dict)  # mode-specific facts (a VTEP MAC, a PID, ...)
    ip_v6: IPv6Interface | None = None     # on the underlay device, in a cluster with IPv6
    lease_v6: IPv6Network | None = None    # the pods' IPv6 subnet, from the mode's plan_v6

    @property
    def leases(self) -> list:
        """The node's pod subnets, IPv4 first (what node.spec.podCIDRs lists)."""
        return [lease for lease in (self.lease, self.lease_v6) if lease is not None]


@dataclass
class ClusterContext:
    """What a mode may use of the cluster it runs in, and nothing else: the topology, the run's
    state (where a mode keeps its facts: `nodes[...].facts`, `mode_facts`, and its processes
    through `own_pid`), the nodes and routers by name, what this machine offers (doctor's
    capabilities) and the cluster's timings (a mode adds its own, e.g. BGP convergence).
    The dictionaries are the cluster's own: they fill as the cluster is built."""
    spec: ClusterSpec
    state: RunState
    nodes: dict[str, NodeContext] = field(default_factory=dict)
    routers: dict[str, Namespace] = field(default_factory=dict)  # a rack router's, by name
    caps: dict[str, bool] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    hosts: dict[str, Namespace] = field(default_factory=dict)  # outside the cluster: external


class PodHost(Protocol):
    """What an add-on (cluster DNS, the Ingress controller) may use of the cluster that runs
    its pod: the topology and state, the kubelet role's runtime (resolv.conf), where the
    scheduler would put a pod and attaching one. lifecycle.cluster.Cluster is one."""
    spec: ClusterSpec
    state: RunState
    runtime: Any

    def least_busy_node(self) -> str: ...

    def add_pod(self, pod: PodSpec) -> PodRecord: ...
