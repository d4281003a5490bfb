"""Services as the API server and the endpoints controller keep them, and their sync to the
nodes' kube-proxy rules.

A Service gets a ClusterIP from the service CIDR (10.96.0.0/12, .1 and .10 kept for the API
server and cluster DNS, as kubeadm does) and, for NodePort and LoadBalancer, a node port from
30000-32767. In a dual-stack cluster its IP families are settled as the API server settles
them (manifests/families.py) and it gets a ClusterIP of each (IPv6: fd00:10:96::/112, kind's).
 Its endpoints are the pods of its namespace whose labels include its selector,
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
from ipaddress import IPv4Address, IPv6Address

from testbed.errors import TestbedError
from testbed.kubeproxy import endpointslices
from testbed.kubeproxy.types import Endpoint, ServicePort
from testbed.manifests import kinds
from testbed.manifests.families import (
    IPV4,
    SERVICE_CIDRS,
    FamilyError,
    api_server_ip,
    dns_server_ip,
    family_of,
    settle,
)
from testbed.model.records import EndpointAddressRecord, ServicePortRecord, ServiceRecord
from testbed.model.state import RunState

SERVICE_CIDR = SERVICE_CIDRS[IPV4]
NODE_PORTS = range(30000, 32768)
API_SERVER_IP = api_server_ip(IPV4)
API_SERVER_PORT = 6443  # where kube-apiserver listens on its node, behind default/kubernetes


def add(state: RunState, svc: kinds.Service,
        load_balancer_pool: Sequence[IPv4Address | IPv6Address] = ()) -> ServiceRecord:
    """Record a kinds.Service (new, or changed in place); returns its record. A
    LoadBalancer gets the first free address of the pool of each of its IP families (the
    pool holds both families' addresses in a cluster with IPv6), or stays <pending> as with
    no load-balancer controller."""
    services = state.services
    key = f"{svc.namespace}/{svc.name}"
    old = services.get(key) or ServiceRecord()
    cluster_ips, families, policy = _cluster_ips(state, svc, key, old)
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
    lb_ips: list[str] = []
    if svc.type == "LoadBalancer":
        taken = {ip for k, r in services.items() if k != key for ip in r.all_load_balancer_ips}
        for family in families:
            kept = [ip for ip in old.all_load_balancer_ips if family_of(ip) == family]
            free = (str(ip) for ip in load_balancer_pool
                    if family_of(str(ip)) == family and str(ip) not in taken)
            lb_ips += kept[:1] or [found for found in [next(free, "")] if found]
    health = 0
    if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local":
        # the API server allocates it from the node-port range, as a node port
        health = svc.health_check_node_port or old.health_check_node_port or \
            next(n for n in NODE_PORTS if n not in used)
        if health in used:
            raise TestbedError(f"{svc.source}: Service {key}: healthCheckNodePort {health} is "
                               "taken")
    record = ServiceRecord(svc.type, cluster_ips[0] if cluster_ips else "",
                           dict(svc.selector), ports,
                           svc.session_affinity, svc.external_name, lb_ips[0] if lb_ips else "",
                           old.created or time.time(), svc.external_traffic_policy,
                           svc.internal_traffic_policy, list(svc.external_ips),
                           list(svc.source_ranges), health, svc.affinity_timeout,
                           svc.topology_mode, old.addresses,
                           [ip for ip in cluster_ips if ip != "None"], families, policy,
                           lb_ips)
    services[key] = record
    return record


def _cluster_ips(state: RunState, svc: kinds.Service, key: str,
                 old: ServiceRecord) -> tuple[list[str], list[str], str]:
    """(clusterIPs, ipFamilies, ipFamilyPolicy) of a Service: as asked and checked, as it
    had them, or allocated one per family; an ExternalName Service has none."""
    if svc.type == "ExternalName":
        return [], [], ""
    asked = list(svc.cluster_ips) or ([svc.cluster_ip] if svc.cluster_ip else [])
    if not asked and old.all_cluster_ips:  # applied again: it keeps its addresses
        return old.all_cluster_ips, old.ip_families or [IPV4], old.ip_family_policy or \
            "SingleStack"
    try:
        settled = settle(list(svc.ip_families), svc.ip_family_policy, asked,
                         bool(svc.selector), state.families)
    except FamilyError as e:
        raise TestbedError(f"{svc.source}: Service {key}: {e}")
    if asked[:1] == ["None"]:
        return ["None"], list(settled.families), settled.policy
    out = []
    for i, family in enumerate(settled.families):
        if i < len(asked):
            ip, cidr = asked[i], SERVICE_CIDRS[family]
            if ipaddress.ip_address(ip) not in cidr or any(
                    ip in r.all_cluster_ips for k, r in state.services.items() if k != key):
                raise TestbedError(f"{svc.source}: Service {key}: clusterIP {ip} is taken "
                                   f"or outside the service CIDR {cidr}")
            out.append(ip)
        else:
            out.append(_free_ip(state.services, family))
    return out, list(settled.families), settled.policy


def add_api_server(state: RunState,
                   addresses: list[tuple[str, str]] | None = None) -> ServiceRecord:
    """default/kubernetes, as every cluster has it: 10.96.0.1:443 (fd00:10:96::1 in an
    IPv6-only cluster) to the API server's port on its node. `addresses` [(ip, node)]:
    where the API server listens inside the emulation (kube-apiserver's endpoint reconciler
    writes them); without, the Service keeps those it has — none when no API server serves
    in the cluster, so a connection is refused at once."""
    record = add(state, kinds.Service(
        "kubernetes", "default", "ClusterIP", {},
        (kinds.ServicePort(443, API_SERVER_PORT, "https", 0, "TCP"),),
        api_server_ip(state.families[0]),
        source="the API server's Service"))
    if addresses is not None:
        record.addresses = [EndpointAddressRecord(ip, node) for ip, node in addresses]
    return record


def remove(state: RunState, namespace: str, name: str) -> bool:
    return state.services.pop(f"{namespace}/{name}", None) is not None


def _free_ip(services, family=IPV4):
    """The first free ClusterIP of a family's range (.1 and .10 kept for the API server
    and kube-dns)."""
    cidr = SERVICE_CIDRS[family]
    taken = {int(ipaddress.ip_address(ip)) for r in services.values()
             for ip in r.all_cluster_ips if family_of(ip) == family}
    taken |= {int(ipaddress.ip_address(reserved(family)))
              for reserved in (api_server_ip, dns_server_ip)}
    first, last = int(cidr.network_address) + 1, int(cidr.broadcast_address)
    free = next((n for n in range(first, last) if n not in taken), None)
    if free is None:
        raise TestbedError(f"the service CIDR {cidr} is full")
    return str(ipaddress.ip_address(free))


def selected_pods(state: RunState, key: str, family: str = IPV4) -> list[tuple[str, str]]:
    """[(pod key, ip)] of the pods with an address of `family` that a Service's selector
    picks."""
    namespace = key.split("/", 1)[0]
    selector = state.services[key].selector
    out = []
    for pod_key, pod in sorted(state.pods.items()):
        if selector and pod.namespace == namespace and \
                all(pod.labels.get(k) == v for k, v in selector.items()):
            ip = pod.address(family)
            if ip:
                out.append((pod_key, ip))
    return out


def endpoints(state: RunState, key: str,
              family: str = IPV4) -> dict[str, list[tuple[str | None, str, object]]]:
    """{port name or number: [(pod key, ip, target port)]} of a Service, from the pods'
    addresses of `family` now; a Service without a selector has its addresses instead (pod
    key None)."""
    record = state.services[key]
    if not record.selector and record.addresses:  # a port named by name has none
        return {port.name or str(port.port): [(None, a.ip, port.target_port)
                                              for a in record.addresses
                                              if isinstance(port.target_port, int)
                                              and family_of(a.ip) == family]
                for port in record.ports}
    selected = selected_pods(state, key, family)
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
    """The kube-proxy view of every Service with a ClusterIP: a ServicePort per port and per
    IP family of the Service (its ClusterIP, endpoints and addresses of that family), as
    kube-proxy's proxier of each family sees it."""
    out = []
    for key, record in sorted(state.services.items()):
        if record.type == "ExternalName" or record.cluster_ip == "None":
            continue
        namespace, name = key.split("/", 1)
        for cluster_ip in record.all_cluster_ips:
            family = family_of(cluster_ip)
            eps = endpoints(state, key, family)
            hints = endpointslices.hinted(state, key, eps, family) if record.topology_mode \
                else {}

            def mine(addresses, family=family):
                return tuple(a for a in addresses if family_of(a.strip().split("/")[0]) ==
                             family)
            lb = tuple(record.all_load_balancer_ips)
            for port in record.ports:
                found = eps[port.name or str(port.port)]
                out.append(ServicePort(
                    namespace, name, port.name, port.protocol.lower(), cluster_ip,
                    port.port, port.node_port, record.session_affinity == "ClientIP",
                    tuple(Endpoint(ip, target, endpointslices.node_of(state, key, pod, ip),
                                   hints.get(ip, "")) for pod, ip, target in found),
                    mine(lb), mine(record.external_ips), mine(record.source_ranges),
                    record.external_traffic_policy == "Local",
                    record.internal_traffic_policy == "Local",
                    record.health_check_node_port, record.affinity_timeout,
                    record.topology_mode in endpointslices.AUTO, family))
    return out
