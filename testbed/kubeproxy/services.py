"""Services as the API server and the endpoints controller keep them, and their sync to the
nodes' kube-proxy rules.

A Service gets a ClusterIP from the service CIDR (10.96.0.0/12, .1 and .10 kept for the API
server and cluster DNS, as kubeadm does) and, for NodePort and LoadBalancer, a node port from
30000-32767. Its endpoints are the pods of its namespace whose labels include its selector,
each port's targetPort resolved by number or by the name of a container port. A LoadBalancer
also gets an address from the first rack, which the Speaker announces, and with
externalTrafficPolicy Local a healthCheckNodePort from the same range as node ports.

After every change of pods or Services, the cluster's kube-proxy (kubeproxy/modes/: one applier per
mode, as the topology's kubeProxy.mode says) recomputes the endpoints and brings every node's
rules up to date.
"""
import ipaddress
import time
from collections.abc import Sequence
from ipaddress import IPv4Address

from testbed.errors import TestbedError
from testbed.kubeproxy import endpointslices
from testbed.kubeproxy.types import Endpoint, ServicePort
from testbed.manifests import kinds
from testbed.model.records import EndpointAddressRecord, ServicePortRecord, ServiceRecord
from testbed.model.state import RunState

SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")
RESERVED = {SERVICE_CIDR[1], SERVICE_CIDR[10]}  # kubernetes API, kube-dns
NODE_PORTS = range(30000, 32768)
API_SERVER_IP = str(SERVICE_CIDR[1])
API_SERVER_PORT = 6443  # where kube-apiserver listens on its node, behind default/kubernetes


def add(state: RunState, svc: kinds.Service,
        load_balancer_pool: Sequence[IPv4Address] = ()) -> ServiceRecord:
    """Record a kinds.Service (new, or changed in place); returns its record. A
    LoadBalancer gets the first free address of the pool, or stays <pending> as with no
    load-balancer controller."""
    services = state.services
    key = f"{svc.namespace}/{svc.name}"
    old = services.get(key) or ServiceRecord()
    if svc.type == "ExternalName":
        cluster_ip = ""
    else:
        cluster_ip = svc.cluster_ip or old.cluster_ip or _free_ip(services)
    if svc.cluster_ip not in ("", "None"):
        ip = ipaddress.IPv4Address(svc.cluster_ip)
        if ip not in SERVICE_CIDR or any(r.cluster_ip == svc.cluster_ip and k != key
                                         for k, r in services.items()):
            raise TestbedError(f"{svc.source}: Service {key}: clusterIP {svc.cluster_ip} is "
                               f"taken or outside the service CIDR {SERVICE_CIDR}")
    ports = []
    exposed = svc.type in ("NodePort", "LoadBalancer")
    used = {p.node_port for k, r in services.items() if k != key for p in r.ports} | \
        {r.health_check_node_port for k, r in services.items() if k != key} \
        if exposed else set()
    for p in svc.ports:
        node_port = p.node_port
        if exposed:
            node_port = node_port or next((n.node_port for n in old.ports
                                           if n.port == p.port), 0) or \
                next(n for n in NODE_PORTS if n not in used)
            if node_port in used:
                raise TestbedError(f"{svc.source}: Service {key}: nodePort {node_port} is "
                                   "taken")
            used.add(node_port)
        ports.append(ServicePortRecord(p.port, p.target_port, p.name, node_port, p.protocol))
    lb_ip = ""
    if svc.type == "LoadBalancer":
        taken = {r.load_balancer_ip for k, r in services.items() if k != key}
        lb_ip = old.load_balancer_ip or next(
            (str(ip) for ip in load_balancer_pool if str(ip) not in taken), "")
    health = 0
    if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local":
        # the API server allocates it from the node-port range, as a node port
        health = svc.health_check_node_port or old.health_check_node_port or \
            next(n for n in NODE_PORTS if n not in used)
        if health in used:
            raise TestbedError(f"{svc.source}: Service {key}: healthCheckNodePort {health} is "
                               "taken")
    record = ServiceRecord(svc.type, cluster_ip, dict(svc.selector), ports,
                           svc.session_affinity, svc.external_name, lb_ip,
                           old.created or time.time(), svc.external_traffic_policy,
                           svc.internal_traffic_policy, list(svc.external_ips),
                           list(svc.source_ranges), health, svc.affinity_timeout,
                           svc.topology_mode, old.addresses)
    services[key] = record
    return record


def add_api_server(state: RunState,
                   addresses: list[tuple[str, str]] | None = None) -> ServiceRecord:
    """default/kubernetes, as every cluster has it: 10.96.0.1:443 to the API server's port on
    its node. `addresses` [(ip, node)]: where the API server listens inside the emulation
    (kube-apiserver's endpoint reconciler writes them); without, the Service keeps those it
    has — none when no API server serves in the cluster, so a connection is refused at once."""
    record = add(state, kinds.Service(
        "kubernetes", "default", "ClusterIP", {},
        (kinds.ServicePort(443, API_SERVER_PORT, "https", 0, "TCP"),), API_SERVER_IP,
        source="the API server's Service"))
    if addresses is not None:
        record.addresses = [EndpointAddressRecord(ip, node) for ip, node in addresses]
    return record


def remove(state: RunState, namespace: str, name: str) -> bool:
    return state.services.pop(f"{namespace}/{name}", None) is not None


def _free_ip(services):
    taken = {int(ipaddress.IPv4Address(r.cluster_ip)) for r in services.values()
             if r.cluster_ip not in ("", "None")} | {int(ip) for ip in RESERVED}
    first, last = int(SERVICE_CIDR.network_address) + 1, int(SERVICE_CIDR.broadcast_address)
    free = next((n for n in range(first, last) if n not in taken), None)
    if free is None:
        raise TestbedError(f"the service CIDR {SERVICE_CIDR} is full")
    return str(ipaddress.IPv4Address(free))


def selected_pods(state: RunState, key: str) -> list[tuple[str, str]]:
    """[(pod key, ip)] of the pods with an address that a Service's selector picks."""
    namespace = key.split("/", 1)[0]
    selector = state.services[key].selector
    return [(pod_key, pod.ip) for pod_key, pod in sorted(state.pods.items())
            if selector and pod.namespace == namespace and pod.ip and
            all(pod.labels.get(k) == v for k, v in selector.items())]


def endpoints(state: RunState, key: str) -> dict[str, list[tuple[str | None, str, object]]]:
    """{port name or number: [(pod key, ip, target port)]} of a Service, from the pods now; a
    Service without a selector has its addresses instead (pod key None)."""
    record = state.services[key]
    if not record.selector and record.addresses:  # a port named by name has none
        return {port.name or str(port.port): [(None, a.ip, port.target_port)
                                              for a in record.addresses
                                              if isinstance(port.target_port, int)]
                for port in record.ports}
    selected = selected_pods(state, key)
    out = {}
    for port in record.ports:
        eps = []
        for pod_key, ip in selected:
            target = port.target_port
            if isinstance(target, str):
                target = state.pods[pod_key].ports.get(target)
                if target is None:
                    continue  # this pod has no container port of that name
            eps.append((pod_key, ip, target))
        out[port.name or str(port.port)] = eps
    return out


def service_ports(state: RunState) -> list[ServicePort]:
    """The kube-proxy view of every Service with a ClusterIP."""
    out = []
    for key, record in sorted(state.services.items()):
        if record.type == "ExternalName" or record.cluster_ip == "None":
            continue
        namespace, name = key.split("/", 1)
        eps = endpoints(state, key)
        hints = endpointslices.hinted(state, key, eps) if record.topology_mode else {}
        for port in record.ports:
            found = eps[port.name or str(port.port)]
            out.append(ServicePort(
                namespace, name, port.name, port.protocol.lower(), record.cluster_ip,
                port.port, port.node_port, record.session_affinity == "ClientIP",
                tuple(Endpoint(ip, target, endpointslices.node_of(state, key, pod, ip),
                               hints.get(ip, "")) for pod, ip, target in found),
                (record.load_balancer_ip,) if record.load_balancer_ip else (),
                tuple(record.external_ips), tuple(record.source_ranges),
                record.external_traffic_policy == "Local",
                record.internal_traffic_policy == "Local",
                record.health_check_node_port, record.affinity_timeout,
                record.topology_mode in endpointslices.AUTO))
    return out
