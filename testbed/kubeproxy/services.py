"""Services as the API server and the endpoints controller keep them, and their sync to the
nodes' kube-proxy rules.

A Service gets a ClusterIP from the service CIDR (10.96.0.0/12, .1 and .10 kept for the API
server and cluster DNS, as kubeadm does) and, for NodePort and LoadBalancer, a node port from
30000-32767. Its endpoints are the pods of its namespace whose labels include its selector,
each port's targetPort resolved by number or by the name of a container port. A LoadBalancer
also gets an address from the first rack, which the Speaker announces.

After every change of pods or Services, the cluster's kube-proxy (IptablesProxies,
NftablesProxies or IpvsProxies, as the topology's kubeProxy.mode says) recomputes the
endpoints and brings every node's rules up to date.
"""
import ipaddress
import time

from testbed.errors import TestbedError
from testbed.kubeproxy import iptables as kubeproxy
from testbed.kubeproxy import ipvs as kubeproxy_ipvs
from testbed.kubeproxy import nftables as kubeproxy_nft

SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")
RESERVED = {SERVICE_CIDR[1], SERVICE_CIDR[10]}  # kubernetes API, kube-dns
NODE_PORTS = range(30000, 32768)


def table(state):
    return state.data.setdefault("services", {})


def add(state, svc, load_balancer_pool=()):
    """Record a manifests.Service (new, or changed in place); returns its record. A
    LoadBalancer gets the first free address of the pool, or stays <pending> as with no
    load-balancer controller."""
    services = table(state)
    key = f"{svc.namespace}/{svc.name}"
    old = services.get(key, {})
    if svc.type == "ExternalName":
        cluster_ip = ""
    else:
        cluster_ip = svc.cluster_ip or old.get("cluster_ip") or _free_ip(services)
    if svc.cluster_ip not in ("", "None"):
        ip = ipaddress.IPv4Address(svc.cluster_ip)
        if ip not in SERVICE_CIDR or any(r["cluster_ip"] == svc.cluster_ip and k != key
                                         for k, r in services.items()):
            raise TestbedError(f"{svc.source}: Service {key}: clusterIP {svc.cluster_ip} is "
                               f"taken or outside the service CIDR {SERVICE_CIDR}")
    ports = []
    exposed = svc.type in ("NodePort", "LoadBalancer")
    used = {p["node_port"] for k, r in services.items() if k != key for p in r["ports"]} \
        if exposed else set()
    for p in svc.ports:
        node_port = p.node_port
        if exposed:
            node_port = node_port or next((n["node_port"] for n in old.get("ports", [])
                                           if n["port"] == p.port), 0) or \
                next(n for n in NODE_PORTS if n not in used)
            if node_port in used:
                raise TestbedError(f"{svc.source}: Service {key}: nodePort {node_port} is "
                                   "taken")
            used.add(node_port)
        ports.append({"name": p.name, "port": p.port, "target_port": p.target_port,
                      "node_port": node_port, "protocol": p.protocol})
    lb_ip = ""
    if svc.type == "LoadBalancer":
        taken = {r.get("load_balancer_ip") for k, r in services.items() if k != key}
        lb_ip = old.get("load_balancer_ip") or next(
            (str(ip) for ip in load_balancer_pool if str(ip) not in taken), "")
    record = {"type": svc.type, "cluster_ip": cluster_ip, "selector": svc.selector,
              "ports": ports, "session_affinity": svc.session_affinity,
              "external_name": svc.external_name, "load_balancer_ip": lb_ip,
              "created": old.get("created") or time.time()}
    services[key] = record
    return record


def remove(state, namespace, name):
    return table(state).pop(f"{namespace}/{name}", None) is not None


def _free_ip(services):
    taken = {int(ipaddress.IPv4Address(r["cluster_ip"])) for r in services.values()
             if r["cluster_ip"] not in ("", "None")} | {int(ip) for ip in RESERVED}
    first, last = int(SERVICE_CIDR.network_address) + 1, int(SERVICE_CIDR.broadcast_address)
    free = next((n for n in range(first, last) if n not in taken), None)
    if free is None:
        raise TestbedError(f"the service CIDR {SERVICE_CIDR} is full")
    return str(ipaddress.IPv4Address(free))


def selected_pods(data, key):
    """[(pod key, ip)] of the pods with an address that a Service's selector picks."""
    namespace = key.split("/", 1)[0]
    selector = data["services"][key]["selector"]
    return [(pod_key, pod["ip"]) for pod_key, pod in sorted(data["pods"].items())
            if selector and pod["namespace"] == namespace and pod["ip"] and
            all(pod.get("labels", {}).get(k) == v for k, v in selector.items())]


def endpoints(data, key):
    """{port name or number: [(pod key, ip, target port)]} of a Service, from the pods now
    (data: a run's state data)."""
    selected = selected_pods(data, key)
    out = {}
    for port in data["services"][key]["ports"]:
        eps = []
        for pod_key, ip in selected:
            target = port["target_port"]
            if isinstance(target, str):
                target = data["pods"][pod_key].get("ports", {}).get(target)
                if target is None:
                    continue  # this pod has no container port of that name
            eps.append((pod_key, ip, target))
        out[port["name"] or str(port["port"])] = eps
    return out


def service_ports(state):
    """The kube-proxy view of every Service with a ClusterIP."""
    out = []
    for key, record in sorted(table(state).items()):
        if record["type"] == "ExternalName" or record["cluster_ip"] == "None":
            continue
        namespace, name = key.split("/", 1)
        eps = endpoints(state.data, key)
        for port in record["ports"]:
            found = eps[port["name"] or str(port["port"])]
            out.append(kubeproxy.ServicePort(
                namespace, name, port["name"], port["protocol"].lower(), record["cluster_ip"],
                port["port"], port["node_port"], record["session_affinity"] == "ClientIP",
                tuple((ip, target) for _pod, ip, target in found),
                (record["load_balancer_ip"],) if record.get("load_balancer_ip") else ()))
    return out


def underlay_device(node):
    """The node's interface holding its underlay address (eth0, or br-phy in the openflow
    mode)."""
    return next(link["ifname"] for link in node.ns.ip_json("-4", "addr", "show")
                if any(a["local"] == str(node.ip.ip) for a in link.get("addr_info", [])))


class _Proxies:
    """kube-proxy on every node: renders once per change, applies to each node."""

    def __init__(self):
        self.hooked = set()  # nodes set up for Service traffic
        self.last = {}  # node -> what it holds now (as the subclass renders it)

    def done(self, rendered):
        """After every node has `rendered`."""

    def recall(self, cluster):
        """Take up what a dead owner's kube-proxy applied, as the state says it did: every
        node is set up and holds the rules rendered from the state (adopt.py)."""
        rendered = self.render(service_ports(cluster.state), str(cluster.spec.pod_cidr))
        for node in cluster.nodes.values():
            self.hooked.add(node.name)
            self.last[node.name] = self.held(node, rendered)
        self.done(rendered)

    def held(self, node, rendered):
        """What a node holds once `rendered` is applied (as `last` keeps it)."""
        return rendered

    def sync(self, cluster):
        if not table(cluster.state) and not self.last:
            return
        rendered = self.render(service_ports(cluster.state), str(cluster.spec.pod_cidr))
        for node in cluster.nodes.values():
            self.apply(node, rendered)
            if node.name not in self.hooked:
                # a node's own connections to a ClusterIP need a route before kube-proxy's
                # OUTPUT rules rewrite them; real nodes have their default route, a node of a
                # one-rack topology has none: the service range goes where one would point
                if not node.ns.run("ip", "-4", "route", "show", "default").strip():
                    node.ns.run("ip", "route", "replace", str(SERVICE_CIDR), "dev",
                                underlay_device(node))
                # as kubeadm requires: bridged pod-to-pod replies of a DNATed connection must
                # pass conntrack, or a client on the same bridge sees the pod's address answer
                node.ns.run("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1",
                            check=False)
                self.hooked.add(node.name)
        self.done(rendered)


class IptablesProxies(_Proxies):
    """kube-proxy's iptables mode: iptables-restore --noflush of the nat chains it owns."""

    def __init__(self):
        super().__init__()
        self.chains = []  # service chains of the last sync, to delete those that go away

    def render(self, ports, pod_cidr):
        return kubeproxy.render(ports, pod_cidr, stale=self.chains)

    def held(self, node, rendered):
        return rendered[1]

    def apply(self, node, rendered):
        node.ns.run("iptables-restore", "--noflush", input=rendered[0])
        if node.name not in self.hooked:
            _hook_nat(node)
        self.last[node.name] = rendered[1]

    def done(self, rendered):
        self.chains = kubeproxy.service_chains(rendered[1])


class NftablesProxies(_Proxies):
    """kube-proxy's nftables mode: one nft transaction per node of what changed."""

    def render(self, ports, pod_cidr):
        return kubeproxy_nft.render(ports, pod_cidr)

    def apply(self, node, rendered):
        text = kubeproxy_nft.transaction(self.last.get(node.name), rendered)
        if text:
            node.ns.run("nft", "-f", "-", input=text)
        self.last[node.name] = rendered


class IpvsProxies(_Proxies):
    """kube-proxy's IPVS mode: virtual servers, ipsets and kube-ipvs0 addresses by diff."""

    def render(self, ports, pod_cidr):
        return ports, pod_cidr  # rendered per node: NodePorts are on each node's address

    def held(self, node, rendered):
        return kubeproxy_ipvs.render(rendered[0], str(node.ip.ip))

    def apply(self, node, rendered):
        ports, pod_cidr = rendered
        new = kubeproxy_ipvs.render(ports, str(node.ip.ip))
        first = node.name not in self.last
        ipvs, sets, addresses = kubeproxy_ipvs.commands(self.last.get(node.name), new)
        if first:
            node.ns.run("ip", "link", "add", kubeproxy_ipvs.DEVICE, "type", "dummy")
            for setting in kubeproxy_ipvs.SYSCTLS:
                node.ns.run("sysctl", "-qw", setting)
        if sets:  # before the rules that match them
            node.ns.run("ipset", "restore", input=sets + "\n")
        if first:
            node.ns.run("iptables-restore", "--noflush", input=kubeproxy_ipvs.nat_rules(pod_cidr))
            _hook_nat(node)
        if addresses:
            node.ns.run("ip", "-batch", "-", input=addresses + "\n")
        if ipvs:
            node.ns.run("ipvsadm", "-R", input=ipvs + "\n")
        self.last[node.name] = new


def _hook_nat(node):
    """kube-proxy's jumps from the built-in nat chains to its own."""
    for chain, rule in kubeproxy.BASE_JUMPS:
        node.ns.run("iptables", "-t", "nat", "-I", chain, "1", *rule)


PROXIES = {"iptables": IptablesProxies, "nftables": NftablesProxies, "ipvs": IpvsProxies}
PROXY_NEEDS = {"iptables": ("iptables",), "nftables": ("nftables",),
               "ipvs": ("ipvs", "ipvsadm", "ipset", "iptables")}
NEED_NAMES = {"ipvs": "the kernel's IPVS (ip_vs)", "nftables": "the kernel's nftables",
              "iptables": "iptables with the kernel's nat table"}


class Speaker:
    """MetalLB's layer-2 mode: one node of the first rack answers ARP for every LoadBalancer
    address (it holds them as /32s on its underlay interface); kube-proxy's rules on that
    node take the traffic from there."""

    def __init__(self):
        self.announced = set()

    def sync(self, cluster):
        wanted = {r["load_balancer_ip"] for r in table(cluster.state).values()
                  if r.get("load_balancer_ip")}
        if wanted == self.announced:
            return
        node = self.announcer(cluster)
        dev = underlay_device(node)
        for ip in sorted(wanted - self.announced):
            node.ns.run("ip", "addr", "add", f"{ip}/32", "dev", dev)
        for ip in sorted(self.announced - wanted):
            node.ns.run("ip", "addr", "del", f"{ip}/32", "dev", dev, check=False)
        self.announced = wanted

    @staticmethod
    def announcer(cluster):
        first_rack = cluster.spec.racks[0].name
        return next((n for n in cluster.nodes.values() if n.rack == first_rack),
                    next(iter(cluster.nodes.values())))
