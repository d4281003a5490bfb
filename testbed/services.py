"""Services as the API server and the endpoints controller keep them, and their sync to the
nodes' kube-proxy rules.

A Service gets a ClusterIP from the service CIDR (10.96.0.0/12, .1 and .10 kept for the API
server and cluster DNS, as kubeadm does) and, for NodePort and LoadBalancer, a node port from
30000-32767. Its endpoints are the pods of its namespace whose labels include its selector,
each port's targetPort resolved by number or by the name of a container port. sync() recomputes
them and rewrites every node's nat table; it runs after every change of pods or Services.
"""
import ipaddress

from . import kubeproxy
from .errors import TestbedError

SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")
RESERVED = {SERVICE_CIDR[1], SERVICE_CIDR[10]}  # kubernetes API, kube-dns
NODE_PORTS = range(30000, 32768)


def table(state):
    return state.data.setdefault("services", {})


def add(state, svc):
    """Record a manifests.Service (new, or changed in place); returns its record."""
    services = table(state)
    key = f"{svc.namespace}/{svc.name}"
    old = services.get(key, {})
    cluster_ip = svc.cluster_ip or old.get("cluster_ip") or _free_ip(services)
    if svc.cluster_ip not in ("", "None"):
        ip = ipaddress.IPv4Address(svc.cluster_ip)
        if ip not in SERVICE_CIDR or any(r["cluster_ip"] == svc.cluster_ip and k != key
                                         for k, r in services.items()):
            raise TestbedError(f"{svc.source}: Service {key}: clusterIP {svc.cluster_ip} is "
                               f"taken or outside the service CIDR {SERVICE_CIDR}")
    ports = []
    used = {p["node_port"] for k, r in services.items() if k != key for p in r["ports"]}
    for p in svc.ports:
        node_port = p.node_port
        if svc.type in ("NodePort", "LoadBalancer"):
            node_port = node_port or next((n["node_port"] for n in old.get("ports", [])
                                           if n["port"] == p.port), 0) or \
                next(n for n in NODE_PORTS if n not in used)
            if node_port in used:
                raise TestbedError(f"{svc.source}: Service {key}: nodePort {node_port} is "
                                   "taken")
            used.add(node_port)
        ports.append({"name": p.name, "port": p.port, "target_port": p.target_port,
                      "node_port": node_port, "protocol": p.protocol})
    record = {"type": svc.type, "cluster_ip": cluster_ip, "selector": svc.selector,
              "ports": ports, "session_affinity": svc.session_affinity,
              "external_name": svc.external_name}
    services[key] = record
    return record


def remove(state, namespace, name):
    return table(state).pop(f"{namespace}/{name}", None) is not None


def _free_ip(services):
    taken = {r["cluster_ip"] for r in services.values()}
    for ip in SERVICE_CIDR.hosts():
        if ip not in RESERVED and str(ip) not in taken:
            return str(ip)
    raise TestbedError(f"the service CIDR {SERVICE_CIDR} is full")


def endpoints(data, key):
    """{port name or number: [(pod, ip, target port)]} of a Service, from the pods now
    (data: a run's state data)."""
    namespace = key.split("/", 1)[0]
    record = data["services"][key]
    selected = [(name, pod) for name, pod in sorted(data["pods"].items())
                if record["selector"] and pod["namespace"] == namespace and pod["ip"] and
                all(pod.get("labels", {}).get(k) == v for k, v in record["selector"].items())]
    out = {}
    for port in record["ports"]:
        eps = []
        for name, pod in selected:
            target = port["target_port"]
            if isinstance(target, str):
                target = pod.get("ports", {}).get(target)
                if target is None:
                    continue  # this pod has no container port of that name
            eps.append((name, pod["ip"], target))
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
                tuple((ip, target) for _pod, ip, target in found)))
    return out


class Proxies:
    """kube-proxy on every node: renders once, applies to each node, remembers its chains."""

    def __init__(self):
        self.chains = []  # service chains of the last sync, to delete those that go away
        self.hooked = set()  # nodes whose built-in chains jump to ours

    def sync(self, cluster):
        if not table(cluster.state) and not self.chains:
            return
        text, chains = kubeproxy.render(service_ports(cluster.state), str(cluster.spec.pod_cidr),
                                        stale=self.chains)
        for node in cluster.nodes.values():
            node.ns.run("iptables-restore", "--noflush", input=text)
            if node.name not in self.hooked:
                for chain, rule in kubeproxy.BASE_JUMPS:
                    node.ns.run("iptables", "-t", "nat", "-I", chain, "1", *rule)
                # as kubeadm requires: bridged pod-to-pod replies of a DNATed connection must
                # pass conntrack, or a client on the same bridge sees the pod's address answer
                node.ns.run("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1",
                            check=False)
                self.hooked.add(node.name)
        self.chains = kubeproxy.service_chains(chains)
