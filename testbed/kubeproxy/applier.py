"""The base of every Service applier (ProxyApplier): kube-proxy in each of its modes
(kubeproxy/modes/) and a CNI mode's own replacement of it (the ebpf mode's BPF service maps)
share its agents, its sync loop, its log and how a node's own connections reach a ClusterIP.

In a dual-stack cluster kube-proxy runs a proxier per IP family (its MetaProxier): here the
applier of the primary family keeps a second instance of its class for IPv6, which renders
and applies the IPv6 Service ports only (ip6tables, say) and shares the primary's agent."""
import os
import shlex
import sys
import time
from typing import Any

from testbed.errors import TestbedError
from testbed.host import rpc
from testbed.host.daemons import Daemon, socket_ready
from testbed.host.parallel import for_each
from testbed.kubeproxy.services import SERVICE_CIDR, service_ports
from testbed.kubeproxy.types import ServicePort
from testbed.manifests.families import IPV4, IPV6, SERVICE_CIDRS
from testbed.model.context import ClusterContext, NodeContext
from testbed.model.state import RunState


def underlay_device(node: NodeContext) -> str:
    """The node's interface holding its underlay address (eth0, or br-phy in the openflow
    mode)."""
    return next(link["ifname"] for link in node.ns.ip_json("-4", "addr", "show")
                if any(a["local"] == str(node.ip.ip) for a in link.get("addr_info", [])))


class SyncLog:
    """A node's kube-proxy log, in kube-proxy's own words and klog's format: each sync, what
    it reloaded and how long it took."""

    def __init__(self, path: str):
        self.path = path

    def line(self, message: str, **fields: object) -> None:
        now = time.time()
        stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
        values = " ".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={str(v).lower()}"
                          if isinstance(v, bool) else f"{k}={v}" for k, v in fields.items())
        with open(self.path, "a") as f:
            f.write(f'I{stamp} {os.getpid():>7} proxier.go] "{message}" {values}\n')


AGENT_SOCKET = "kube-proxy.sock"  # in the node's directory
AGENT_READY_S = 10.0


class ProxyApplier:
    """What serves Services on every node — kube-proxy in one of its modes, or a CNI mode's
    own replacement of it: renders each node's rules (traffic policies Local and NodePorts
    make them differ from node to node) and applies them; its listeners (agent.py: /healthz,
    health-check node ports) run as the daemon kube-proxy@NODE.

    A subclass is one mode: `render(ports, pod_cidr, node)` and `apply(node, rendered)`, how
    it `describe`s a Service port's chains, and the probes it `needs`."""

    # as the topology's kubeProxy.mode and the run's state name it, and what its log says it
    # syncs ("Syncing iptables rules")
    name = ""
    agent_name = "kube-proxy"  # its daemon is <agent_name>@NODE, its log <agent_name>.log
    # {doctor probe: how a refusal names it} of what the mode cannot work without
    needs: dict[str, str] = {}
    # who rewrites a Service's packets and who tracks their connections, as a trace says it
    nat_by = ""  # "": kube-proxy's rules, which the trace reads from the kernel
    tracked_by = "conntrack"
    ip_families: tuple[str, ...] = (IPV4,)  # the families whose Services the mode serves

    @classmethod
    def describe(cls, sp: ServicePort) -> list[str]:
        """What this mode writes for one Service port on every node, for `describe service`:
        a heading and one line per chain (names as the real component writes them)."""
        return []

    @classmethod
    def heading(cls, sp: ServicePort) -> str:
        return f"kube-proxy ({cls.name}), port {sp.port_name or sp.port}:"

    @classmethod
    def chain_lines(cls, sp: ServicePort, service: str, endpoints: list[str], local: str,
                    external: str, firewall: str) -> list[str]:
        """describe() of a mode that writes chains, given their names: the service's chain,
        one per endpoint, then the chains of the node's own endpoints (a traffic policy
        Local), of external traffic and of source ranges where the port has them."""
        external_too = sp.externally_accessible
        chains = [service, *endpoints]
        if sp.internal_local or (sp.external_local and external_too):
            chains.append(f"{local} (this node's endpoints)")
        chains += [external] if external_too else []
        chains += [firewall] if sp.load_balancer_ips and sp.source_ranges else []
        return [cls.heading(sp)] + [f"  {chain}" for chain in chains]

    def render(self, ports: list[ServicePort], pod_cidr: str, node: NodeContext) -> Any:
        """What the node should hold (the mode's own shape), from every Service port."""
        raise NotImplementedError

    def apply(self, node: NodeContext, rendered: Any) -> None:
        """Bring the node from what it holds (self.last) to `rendered`."""
        raise NotImplementedError

    def __init__(self) -> None:
        self.hooked: set[str] = set()  # nodes set up for Service traffic
        self.last: dict[str, Any] = {}  # node -> what it holds now (as the subclass renders it)
        self.agents: dict[str, Daemon] = {}  # node -> its kube-proxy@NODE Daemon
        self.configs: dict[str, dict] = {}  # node -> what its agent was last told
        self.proxy_ports: dict[str, dict] = {}  # node -> {service port: proxy port} (userspace)
        self.zones: dict[str, str] = {}  # node -> its topology.kubernetes.io/zone
        self.family = IPV4  # the family this instance renders Services of
        self.ipv6: ProxyApplier | None = None  # the IPv6 proxier, in a dual-stack cluster

    @property
    def tool(self) -> str:
        """The packet filter's command for this proxier's family: iptables, or ip6tables for
        the IPv6 proxier."""
        return "ip6tables" if self.family == IPV6 else "iptables"

    def family_proxier(self) -> "ProxyApplier":
        """A second instance of this mode, for the IPv6 Service ports."""
        proxier = type(self)()
        proxier.family = IPV6
        return proxier

    def _proxiers(self, cluster: ClusterContext) -> list[tuple["ProxyApplier", str]]:
        """(proxier, its family's pod CIDR) per family the cluster has, the primary first."""
        spec = cluster.spec
        if spec.pod_cidr_v6 is not None and IPV6 in self.ip_families and self.ipv6 is None:
            self.ipv6 = self.family_proxier()
        out: list[tuple[ProxyApplier, str]] = [(self, str(spec.pod_cidr))]
        if self.ipv6 is not None:
            out.append((self.ipv6, str(spec.pod_cidr_v6)))
        return out

    # --- the agents ----------------------------------------------------------------------
    def start_agent(self, cluster: ClusterContext, node: NodeContext) -> None:
        sock = os.path.join(node.dir, AGENT_SOCKET)
        argv = node.ns.argv(sys.executable, "-m", "testbed.kubeproxy.agent", sock, node.name)
        agent = Daemon(f"{self.agent_name}@{node.name}", argv, self.log_path(node))
        self.agents[node.name] = agent
        self.configs.pop(node.name, None)
        agent.start(cluster.state, socket_ready(sock, lambda: rpc.request(
            sock, {"stats": True}, timeout=0.5)), AGENT_READY_S)

    def log_path(self, node: NodeContext) -> str:
        """The agent's log, with the syncs (`testbed logs <agent_name>@NODE`)."""
        return os.path.join(node.dir, f"{self.agent_name}.log")

    def agent_config(self, node: NodeContext, ports: list[ServicePort]) -> dict:
        """What a mode adds to the agent's configuration."""
        return {}

    def configure_agent(self, node: NodeContext, ports: list[ServicePort]) -> None:
        """Tell a node's agent the health-check node ports and their local endpoints (and
        what else the mode has it serve)."""
        checks: dict[str, dict] = {}
        for sp in ports:
            if sp.health_check_node_port:  # one per Service, counted over its first port
                checks.setdefault(str(sp.health_check_node_port), {
                    "namespace": sp.namespace, "name": sp.name,
                    "localEndpoints": len(sp.local_endpoints(node.name))})
        config = {"health_checks": checks, **self.agent_config(node, ports)}
        if node.name in self.agents and self.configs.get(node.name) != config:
            reply = rpc.request(os.path.join(node.dir, AGENT_SOCKET), {"config": config})
            if "error" in reply:
                raise TestbedError(f"{self.agent_name}@{node.name}: {reply['error']}")
            self.configs[node.name] = config
            self.proxy_ports[node.name] = reply.get("ports", {})

    def adopt_agents(self, cluster: ClusterContext) -> None:
        """Own the agents a dead owner started (as its state records them)."""
        for node in cluster.nodes.values():
            label = f"{self.agent_name}@{node.name}"
            if any(e.what == label for e in cluster.state.owned.pids):
                agent = Daemon(label, [], self.log_path(node))
                agent.take_over(cluster.state)
                self.agents[node.name] = agent

    def restart_agent(self, cluster: ClusterContext, node_name: str) -> bool:
        """Start a node's agent again if it died, and tell it everything anew; False if it
        runs (or never did)."""
        old = self.agents.get(node_name)
        if old is None or old.status(node_name).alive:
            return False
        old.stop(cluster.state)
        node = cluster.nodes[node_name]
        self.start_agent(cluster, node)
        self.configure_agent(node, service_ports(cluster.state))
        return True

    def daemon_status(self) -> dict:
        return {f"{self.agent_name}@{name}": agent.status(name)
                for name, agent in self.agents.items()}

    def stop(self, state: RunState) -> None:
        for agent in self.agents.values():
            agent.stop(state)
        self.agents = {}

    def recall(self, cluster: ClusterContext) -> None:
        """Take up what a dead owner's kube-proxy applied, as the state says it did: every
        node is set up and holds the rules rendered from the state (adopt.py)."""
        ports = service_ports(cluster.state)
        for proxier, pod_cidr in self._proxiers(cluster):
            proxier.zones = {n: r.topology_zone for n, r in cluster.state.nodes.items()}
            mine = [p for p in ports if p.family == proxier.family]
            for node in cluster.nodes.values():
                proxier.hooked.add(node.name)
                proxier.last[node.name] = proxier.render(mine, pod_cidr, node)

    def sync(self, cluster: ClusterContext) -> None:
        if not cluster.state.services and not self.last:
            return
        ports = service_ports(cluster.state)
        proxiers = self._proxiers(cluster)
        zones = {n: r.topology_zone for n, r in cluster.state.nodes.items()}
        for proxier, _ in proxiers:
            proxier.zones = zones
        # nodes side by side, as each node's kube-proxy syncs on its own: a first sync starts
        # the node's agent and waits for it, which a hundred nodes in turn would add up
        for_each(cluster.nodes.values(), lambda node: self._sync_node(cluster, node, ports,
                                                                      proxiers))

    def _sync_node(self, cluster: ClusterContext, node: NodeContext,
                   ports: list[ServicePort], proxiers: list) -> None:
        if node.name not in self.agents:
            self.start_agent(cluster, node)
        primary = [p for p in ports if p.family == self.family]
        self.configure_agent(node, primary)
        for proxier, pod_cidr in proxiers:
            proxier.sync_family(node, [p for p in ports if p.family == proxier.family],
                                pod_cidr, self.log_path(node))

    def sync_family(self, node: NodeContext, ports: list[ServicePort], pod_cidr: str,
                    log_path: str) -> None:
        """One family's sync of a node, logged as kube-proxy logs it."""
        rendered = self.render(ports, pod_cidr, node)
        partial = node.name in self.last
        log = SyncLog(log_path)
        log.line("Syncing " + self.name + " rules", ipFamily=self.family)
        log.line(f"Reloading service {self.name} data",
                 numServices=len({(p.namespace, p.name) for p in ports}),
                 numServicePorts=len(ports),
                 numEndpoints=sum(len(p.endpoints) for p in ports))
        started = time.perf_counter()
        if node.name not in self.hooked:
            self.prepare(node)
        self.apply(node, rendered)
        log.line("SyncProxyRules complete", ipFamily=self.family, partial=partial,
                 elapsed=f"{(time.perf_counter() - started) * 1000:.3f}ms")
        if node.name not in self.hooked:
            self.route_services(node)
            self.hooked.add(node.name)

    def prepare(self, node: NodeContext) -> None:
        """Before a node's first sync."""

    def route_services(self, node: NodeContext) -> None:
        """After a node's first sync: what its own connections to a ClusterIP need."""
        # they need a route before kube-proxy's OUTPUT rules rewrite them; real nodes have
        # their default route, a node of a one-rack topology has none: the service range
        # goes where one would point
        v6 = self.family == IPV6
        if not node.ns.run("ip", "-6" if v6 else "-4", "route", "show", "default").strip():
            node.ns.run("ip", "route", "replace",
                        str(SERVICE_CIDRS[IPV6] if v6 else SERVICE_CIDR), "dev",
                        underlay_device(node))
        # as kubeadm requires: bridged pod-to-pod replies of a DNATed connection must
        # pass conntrack, or a client on the same bridge sees the pod's address answer
        node.ns.run("sysctl", "-qw",
                    f"net.bridge.bridge-nf-call-ip{'6' if v6 else ''}tables=1", check=False)


def hook(node: NodeContext, jumps: list[tuple[str, str, str]], tool: str = "iptables") -> None:
    """kube-proxy's jumps from the built-in chains to its own, first in each chain (with
    `tool`: iptables, or ip6tables for IPv6)."""
    for table, chain, rule in reversed(jumps):
        node.ns.run(tool, "-w", "-t", table, "-I", chain, "1", *shlex.split(rule))

