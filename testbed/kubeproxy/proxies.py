"""kube-proxy's appliers, one per mode: after each change, each renders every node's rules (with
that mode's renderer: iptables.py, nftables.py, ipvs.py) and brings the node up to date."""
import os
import shlex
import sys
import time

from testbed.errors import CommandError, TestbedError
from testbed.host import rpc
from testbed.host.daemons import Daemon, socket_ready
from testbed.host.parallel import for_each
from testbed.kubeproxy import iptables as kubeproxy
from testbed.kubeproxy import ipvs as kubeproxy_ipvs
from testbed.kubeproxy import nftables as kubeproxy_nft
from testbed.kubeproxy import userspace as kubeproxy_userspace
from testbed.kubeproxy.services import SERVICE_CIDR, service_ports


def underlay_device(node):
    """The node's interface holding its underlay address (eth0, or br-phy in the openflow
    mode)."""
    return next(link["ifname"] for link in node.ns.ip_json("-4", "addr", "show")
                if any(a["local"] == str(node.ip.ip) for a in link.get("addr_info", [])))


class SyncLog:
    """A node's kube-proxy log, in kube-proxy's own words and klog's format: each sync, what
    it reloaded and how long it took."""

    def __init__(self, path: str):
        self.path = path

    def line(self, message: str, **fields) -> None:
        now = time.time()
        stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
        values = " ".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={str(v).lower()}"
                          if isinstance(v, bool) else f"{k}={v}" for k, v in fields.items())
        with open(self.path, "a") as f:
            f.write(f'I{stamp} {os.getpid():>7} proxier.go] "{message}" {values}\n')


AGENT_SOCKET = "kube-proxy.sock"  # in the node's directory
AGENT_READY_S = 10.0


class _Proxies:
    """kube-proxy on every node: renders each node's rules (traffic policies Local and
    NodePorts make them differ from node to node) and applies them; its listeners (agent.py:
    /healthz, health-check node ports) run as the daemon kube-proxy@NODE."""

    tables = "iptables"  # what kube-proxy's log says it syncs
    agent_name = "kube-proxy"  # its daemon is <agent_name>@NODE, its log <agent_name>.log

    def __init__(self):
        self.hooked = set()  # nodes set up for Service traffic
        self.last = {}  # node -> what it holds now (as the subclass renders it)
        self.agents = {}  # node -> its kube-proxy@NODE Daemon
        self.configs = {}  # node -> what its agent was last told
        self.proxy_ports = {}  # node -> {service port: proxy port} (userspace mode)
        self.zones = {}  # node -> its topology.kubernetes.io/zone

    # --- the agents ----------------------------------------------------------------------
    def start_agent(self, cluster, node):
        sock = os.path.join(node.dir, AGENT_SOCKET)
        argv = node.ns.argv(sys.executable, "-m", "testbed.kubeproxy.agent", sock, node.name)
        agent = Daemon(f"{self.agent_name}@{node.name}", argv, self.log_path(node))
        self.agents[node.name] = agent
        self.configs.pop(node.name, None)
        agent.start(cluster.state, socket_ready(sock, lambda: rpc.request(
            sock, {"stats": True}, timeout=0.5)), AGENT_READY_S)

    def log_path(self, node) -> str:
        """The agent's log, with the syncs (`testbed logs <agent_name>@NODE`)."""
        return os.path.join(node.dir, f"{self.agent_name}.log")

    def agent_config(self, node, ports) -> dict:
        """What a mode adds to the agent's configuration."""
        return {}

    def configure_agent(self, node, ports):
        """Tell a node's agent the health-check node ports and their local endpoints (and
        what else the mode has it serve)."""
        checks = {}
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

    def adopt_agents(self, cluster):
        """Own the agents a dead owner started (as its state records them)."""
        for node in cluster.nodes.values():
            label = f"{self.agent_name}@{node.name}"
            if any(e.what == label for e in cluster.state.owned.pids):
                agent = Daemon(label, [], self.log_path(node))
                agent.take_over(cluster.state)
                self.agents[node.name] = agent

    def restart_agent(self, cluster, node_name) -> bool:
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

    def stop(self, state):
        for agent in self.agents.values():
            agent.stop(state)
        self.agents = {}

    def recall(self, cluster):
        """Take up what a dead owner's kube-proxy applied, as the state says it did: every
        node is set up and holds the rules rendered from the state (adopt.py)."""
        ports = service_ports(cluster.state)
        self.zones = {n: r.topology_zone for n, r in cluster.state.nodes.items()}
        for node in cluster.nodes.values():
            self.hooked.add(node.name)
            self.last[node.name] = self.render(ports, str(cluster.spec.pod_cidr), node)

    def sync(self, cluster):
        if not cluster.state.services and not self.last:
            return
        ports = service_ports(cluster.state)
        self.zones = {n: r.topology_zone for n, r in cluster.state.nodes.items()}
        pod_cidr = str(cluster.spec.pod_cidr)
        # nodes side by side, as each node's kube-proxy syncs on its own: a first sync starts
        # the node's agent and waits for it, which a hundred nodes in turn would add up
        for_each(cluster.nodes.values(), lambda node: self._sync_node(cluster, node, ports,
                                                                      pod_cidr))

    def _sync_node(self, cluster, node, ports, pod_cidr):
        rendered = self.render(ports, pod_cidr, node)
        partial = node.name in self.last
        if node.name not in self.agents:
            self.start_agent(cluster, node)
        log = SyncLog(self.log_path(node))
        log.line("Syncing " + self.tables + " rules", ipFamily="IPv4")
        log.line(f"Reloading service {self.tables} data",
                 numServices=len({(p.namespace, p.name) for p in ports}),
                 numServicePorts=len(ports),
                 numEndpoints=sum(len(p.endpoints) for p in ports))
        started = time.perf_counter()
        if node.name not in self.hooked:
            self.prepare(node)
        self.configure_agent(node, ports)
        self.apply(node, rendered)
        log.line("SyncProxyRules complete", ipFamily="IPv4", partial=partial,
                 elapsed=f"{(time.perf_counter() - started) * 1000:.3f}ms")
        if node.name not in self.hooked:
            self.route_services(node)
            self.hooked.add(node.name)

    def prepare(self, node):
        """Before a node's first sync."""

    def route_services(self, node):
        """After a node's first sync: what its own connections to a ClusterIP need."""
        # they need a route before kube-proxy's OUTPUT rules rewrite them; real nodes have
        # their default route, a node of a one-rack topology has none: the service range
        # goes where one would point
        if not node.ns.run("ip", "-4", "route", "show", "default").strip():
            node.ns.run("ip", "route", "replace", str(SERVICE_CIDR), "dev",
                        underlay_device(node))
        # as kubeadm requires: bridged pod-to-pod replies of a DNATed connection must
        # pass conntrack, or a client on the same bridge sees the pod's address answer
        node.ns.run("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", check=False)


class IptablesProxies(_Proxies):
    """kube-proxy's iptables mode: iptables-restore --noflush of the filter and nat chains it
    owns; after a node's first sync, partially (the filter table, the top-level nat chains and
    what changed), falling back to a full restore if a partial one fails, as kube-proxy does."""

    def render(self, ports, pod_cidr, node):
        return kubeproxy.ruleset(ports, pod_cidr, node.name, str(node.ip.ip),
                                 self.zones.get(node.name, ""))

    def prepare(self, node):
        # localhost NodePorts: 127.0.0.1:<nodePort> is DNATed to a pod, which the kernel
        # routes only with route_localnet (kube-proxy sets it; KUBE-FIREWALL drops martians)
        node.ns.run("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
        for table in kubeproxy.CANARY_TABLES:
            node.ns.run("iptables", "-w", "-t", table, "-N", kubeproxy.CANARY)

    def apply(self, node, rendered):
        held = self.last.get(node.name)
        try:
            node.ns.run("iptables-restore", "-w", "--noflush",
                        input=kubeproxy.restore_input(rendered, held, partial=held is not None))
        except CommandError:
            if held is None:
                raise
            node.ns.run("iptables-restore", "-w", "--noflush",
                        input=kubeproxy.restore_input(rendered, held))
        if node.name not in self.hooked:
            _hook(node, kubeproxy.BASE_JUMPS)
        self.last[node.name] = rendered


class NftablesProxies(_Proxies):
    """kube-proxy's nftables mode: one nft transaction per node of what changed."""

    tables = "nftables"

    def render(self, ports, pod_cidr, node):
        return kubeproxy_nft.render(ports, pod_cidr, node.name, str(node.ip.ip),
                                    zone=self.zones.get(node.name, ""))

    def apply(self, node, rendered):
        text = kubeproxy_nft.transaction(self.last.get(node.name), rendered)
        if text:
            node.ns.run("nft", "-f", "-", input=text)
        self.last[node.name] = rendered


class IpvsProxies(_Proxies):
    """kube-proxy's IPVS mode: virtual servers, ipsets and kube-ipvs0 addresses by diff."""

    tables = "ipvs"

    def render(self, ports, pod_cidr, node):
        return kubeproxy_ipvs.render(ports, str(node.ip.ip), node.name,
                                     self.zones.get(node.name, "")), pod_cidr

    def apply(self, node, rendered):
        new, pod_cidr = rendered
        first = node.name not in self.last
        ipvs, sets, addresses = kubeproxy_ipvs.commands(
            self.last[node.name][0] if not first else None, new)
        if first:
            node.ns.run("ip", "link", "add", kubeproxy_ipvs.DEVICE, "type", "dummy")
            for setting in kubeproxy_ipvs.SYSCTLS:
                node.ns.run("sysctl", "-qw", setting)
        if sets:  # before the rules that match them
            node.ns.run("ipset", "restore", input=sets + "\n")
        if first:
            node.ns.run("iptables-restore", "--noflush", input=kubeproxy_ipvs.nat_rules(pod_cidr))
            _hook(node, [j for j in kubeproxy.BASE_JUMPS if j[0] == "nat"] +
                  [("filter", chain, rule) for chain, rule in kubeproxy_ipvs.FILTER_JUMPS])
        if addresses:
            node.ns.run("ip", "-batch", "-", input=addresses + "\n")
        if ipvs:
            node.ns.run("ipvsadm", "-R", input=ipvs + "\n")
        self.last[node.name] = rendered


class UserspaceProxies(_Proxies):
    """kube-proxy's userspace mode: the node's kube-proxy@NODE proxies every Service port
    itself (proxier.py); iptables rules send the Service's addresses and NodePorts to its
    proxy ports (userspace.py)."""

    tables = "userspace"

    def render(self, ports, pod_cidr, node):
        return [sp for sp in ports if sp.protocol in ("tcp", "udp")]  # as the old proxier

    def agent_config(self, node, ports):
        zone = self.zones.get(node.name, "")
        portals = {}
        for sp in ports:
            if sp.protocol in ("tcp", "udp"):
                portals.update(kubeproxy_userspace.portals(sp, node.name, zone))
        return {"listen": str(node.ip.ip), "portals": portals}

    def apply(self, node, ports):
        text = kubeproxy_userspace.render(ports, str(node.ip.ip),
                                          self.proxy_ports.get(node.name, {}))
        node.ns.run("iptables-restore", "-w", "--noflush", input=text)
        if node.name not in self.hooked:
            for table, chain, where, rule in kubeproxy_userspace.HOOKS:
                position = ["-I", chain, "1"] if where == "first" else ["-A", chain]
                node.ns.run("iptables", "-w", "-t", table, *position, *shlex.split(rule))
        self.last[node.name] = ports

    def recall(self, cluster):
        super().recall(cluster)
        for node in cluster.nodes.values():  # the ports its proxy listens on, as it says
            stats = rpc.request(os.path.join(node.dir, AGENT_SOCKET), {"stats": True})
            self.proxy_ports[node.name] = {name: p["port"] for name, p in
                                           stats.get("portals", {}).items()}


def _hook(node, jumps):
    """kube-proxy's jumps from the built-in chains to its own, first in each chain."""
    for table, chain, rule in reversed(jumps):
        node.ns.run("iptables", "-w", "-t", table, "-I", chain, "1", *shlex.split(rule))


PROXIES = {"iptables": IptablesProxies, "nftables": NftablesProxies, "ipvs": IpvsProxies,
           "userspace": UserspaceProxies}
PROXY_NEEDS = {"iptables": ("iptables",), "nftables": ("nftables",), "userspace": ("iptables",),
               "ipvs": ("ipvs", "ipvsadm", "ipset", "iptables")}
NEED_NAMES = {"ipvs": "the kernel's IPVS (ip_vs)", "nftables": "the kernel's nftables",
              "iptables": "iptables with the kernel's nat table"}
