"""A run's state as the API server shows it: the objects `kubectl get -o json` prints.

Pods, Nodes, Services, Endpoints, NetworkPolicies and Namespaces are rendered in Kubernetes'
own shapes (apiVersion, kind, metadata, spec, status), and a listing is a `kind: List`, so that
scripts written against kubectl's output read the testbed's too. Fields the testbed has no
value for are left out, as the API server leaves out empty ones. A pod's sandbox (its network
namespace) is in the annotation SANDBOX_ANNOTATION.
"""
import time

from testbed.host.processes import pid_is
from testbed.kubeproxy import endpointslices
from testbed.kubeproxy.services import endpoints as service_endpoints
from testbed.manifests.families import IPV4
from testbed.model.records import NamespaceRecord, PodRecord
from testbed.model.state import DEFAULT_NAMESPACES, RunState
from testbed.policy import semantics as pol

SANDBOX_ANNOTATION = "testbed.k8s.io/sandbox"
RACK_LABEL = "topology.kubernetes.io/zone"  # a rack is the failure domain a zone names


def timestamp(seconds: float | None) -> str:
    """RFC 3339 in UTC, as metadata.creationTimestamp is written."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds or 0))


def _meta(name, namespace=None, labels=None, created=None, annotations=None):
    meta = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if created:
        meta["creationTimestamp"] = timestamp(created)
    return meta


def running_pod_status(record: PodRecord, host_ips: list[str]) -> dict:
    """The status the kubelet reports of a pod with its sandbox: Running, each container
    ready while its process lives; one whose process is gone terminated (this runtime does
    not restart containers), and the pod then not Ready. host_ips: its node's addresses of
    every family it reports, hostIP the first."""
    started = timestamp(record.created or 0)
    ips = record.addresses
    host_ip = host_ips[0]
    statuses = []
    for name, proc in sorted(record.containers.items()):
        alive = pid_is(proc.pid, proc.start)
        statuses.append({
            "name": name, "ready": alive, "started": alive, "restartCount": 0, "image": "",
            "imageID": "", "containerID": f"testbed://{proc.pid}",
            "state": {"running": {"startedAt": started}} if alive else
            {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started}}})
    ready = "True" if all(c["ready"] for c in statuses) else "False"
    conditions = [
        {"type": t, "status": "True" if t not in ("Ready", "ContainersReady") else ready,
         "lastProbeTime": None, "lastTransitionTime": started,
         **({"reason": "ContainersNotReady"}
            if ready == "False" and t in ("Ready", "ContainersReady") else {})}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                  "PodScheduled")]
    return {"phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": ip} for ip in host_ips],
            "podIP": ips[0] if ips else host_ip,
            "podIPs": [{"ip": ip} for ip in (ips or [host_ip])],
            "startTime": started, "conditions": conditions, "qosClass": "BestEffort",
            "containerStatuses": statuses}


def pod_columns(pod: dict) -> tuple[str, str, str]:
    """(READY, STATUS, RESTARTS) of a Pod object, as kubectl's printer derives them: ready
    containers of all; the phase, or a container's waiting or terminated reason, or
    Terminating."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Pending"
    for c in reversed(statuses):
        state = c.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated:
            reason = f"ExitCode:{terminated.get('exitCode', 0)}"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    return f"{ready}/{len(spec.get('containers') or [])}", reason, str(restarts)


def pod_status(rec: PodRecord) -> tuple[str, str]:
    """(READY, STATUS) of a pod the cluster runs, as kubectl prints them."""
    ready, status, _restarts = pod_columns(
        {"spec": {"containers": list(rec.containers)}, "status": _record_status(rec)})
    return ready, status


def _record_status(rec, host_ips: list[str] | None = None) -> dict:
    if not rec.ip or not rec.containers:  # its sandbox or its containers not made yet
        return {"phase": "Pending",
                **({"hostIP": host_ips[0], "hostIPs": [{"ip": ip} for ip in host_ips]}
                   if host_ips else {}),
                **({"podIP": rec.ip, "podIPs": [{"ip": ip} for ip in rec.addresses]}
                   if rec.ip else {}),
                "containerStatuses": [
                    {"name": name, "ready": False, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}
                    for name in sorted(rec.containers)]}
    return running_pod_status(rec, host_ips or [""])


def _in(namespace, wanted):
    return wanted is None or namespace == wanted


def pods(state: RunState, namespace: str | None = None) -> list:
    out = []
    for _key, rec in sorted(state.pods.items()):
        if not _in(rec.namespace, namespace):
            continue
        node = state.nodes.get(rec.node)
        host_ips = node.addresses_by_family if node else None
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": _meta(rec.name, rec.namespace, rec.labels, rec.created,
                                      {SANDBOX_ANNOTATION: rec.netns}),
                    "spec": {"nodeName": rec.node,
                             "containers": [{"name": name} for name in rec.containers]},
                    "status": _record_status(rec, host_ips)})
    return out


def nodes(state: RunState, namespace: str | None = None) -> list:
    out = []
    for name, rec in state.nodes.items():
        spec = {}
        if rec.lease and rec.lease != "-":
            cidrs = rec.lease.split(",")
            spec = {"podCIDR": cidrs[0], "podCIDRs": cidrs}
        out.append({"apiVersion": "v1", "kind": "Node",
                    "metadata": _meta(name, labels={"kubernetes.io/hostname": name,
                                                    RACK_LABEL: rec.topology_zone},
                                      created=state.created),
                    "spec": spec,
                    "status": {"addresses": [{"type": "InternalIP", "address": ip}
                                             for ip in rec.addresses_by_family] +
                               [{"type": "Hostname", "address": name}],
                               "conditions": [{"type": "Ready", "status": "True"}]}})
    return out


def services(state: RunState, namespace: str | None = None) -> list:
    out = []
    for key, rec in sorted(state.services.items()):
        ns, name = key.split("/", 1)
        if not _in(ns, namespace):
            continue
        spec = {"type": rec.type, "sessionAffinity": rec.session_affinity}
        if rec.selector:
            spec["selector"] = dict(rec.selector)
        if rec.type == "ExternalName":
            spec["externalName"] = rec.external_name
        else:
            spec["clusterIP"] = rec.cluster_ip
            spec["clusterIPs"] = rec.all_cluster_ips or [rec.cluster_ip]
            spec["ipFamilies"] = rec.ip_families or [IPV4]
            spec["ipFamilyPolicy"] = rec.ip_family_policy or "SingleStack"
            spec["internalTrafficPolicy"] = rec.internal_traffic_policy
        if rec.external_traffic_policy:
            spec["externalTrafficPolicy"] = rec.external_traffic_policy
        if rec.external_ips:
            spec["externalIPs"] = list(rec.external_ips)
        if rec.source_ranges:
            spec["loadBalancerSourceRanges"] = list(rec.source_ranges)
        if rec.health_check_node_port:
            spec["healthCheckNodePort"] = rec.health_check_node_port
        if rec.session_affinity == "ClientIP":
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds":
                                                          rec.affinity_timeout}}
        ports = []
        for p in rec.ports:
            port = {"port": p.port, "protocol": p.protocol, "targetPort": p.target_port}
            if p.name:
                port["name"] = p.name
            if p.node_port:
                port["nodePort"] = p.node_port
            ports.append(port)
        if ports:
            spec["ports"] = ports
        status = {"loadBalancer": {}}
        if rec.all_load_balancer_ips:  # an address of each family, MetalLB's order
            status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}
                                                  for ip in rec.all_load_balancer_ips]}
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": _meta(name, ns, created=rec.created),
                    "spec": spec, "status": status})
    return out


def endpoints(state: RunState, namespace: str | None = None) -> list:
    """Endpoints as the endpoints controller writes them: a subset per distinct set of
    addresses, with the ports they serve."""
    out = []
    for key, rec in sorted(state.services.items()):
        ns, name = key.split("/", 1)
        if not _in(ns, namespace) or rec.type == "ExternalName":
            continue
        # the endpoints controller writes the Service's primary family only
        by_port = service_endpoints(state, key, (rec.ip_families or [IPV4])[0])
        subsets = {}
        for port in rec.ports:
            eps = by_port[port.name or str(port.port)]
            addresses = tuple(sorted((ip, pod_key or "") for pod_key, ip, _t in eps))
            if not addresses:
                continue
            entry = {"port": eps[0][2], "protocol": port.protocol}
            if port.name:
                entry["name"] = port.name
            subsets.setdefault(addresses, []).append(entry)
        rendered = []
        for addresses, ports in subsets.items():
            rendered.append({"addresses": [
                {"ip": ip, "nodeName": state.pods[pod_key].node,
                 "targetRef": {"kind": "Pod", "namespace": ns,
                               "name": state.pods[pod_key].name}} if pod_key else {"ip": ip}
                for ip, pod_key in addresses], "ports": ports})
        item = {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": _meta(name, ns, created=rec.created)}
        if rendered:
            item["subsets"] = rendered
        out.append(item)
    return out


def _selector(sel):
    if sel is None:
        return None
    out = {}
    if sel.match_labels:
        out["matchLabels"] = dict(sel.match_labels)
    if sel.match_expressions:
        out["matchExpressions"] = [
            {"key": k, "operator": op, **({"values": list(v)} if v else {})}
            for k, op, v in sel.match_expressions]
    return out


def _peer(peer):
    if peer.cidr:
        block = {"cidr": peer.cidr}
        if peer.excepts:
            block["except"] = list(peer.excepts)
        return {"ipBlock": block}
    out = {}
    if peer.pod_selector is not None:
        out["podSelector"] = _selector(peer.pod_selector)
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = _selector(peer.namespace_selector)
    return out


def _port(port):
    out = {"protocol": port.protocol}
    if port.port is not None:
        out["port"] = port.port
    if port.end_port:
        out["endPort"] = port.end_port
    return out


def _rules(rules, peers_key):
    out = []
    for rule in rules:
        item = {}
        if rule.peers:
            item[peers_key] = [_peer(p) for p in rule.peers]
        if rule.ports:
            item["ports"] = [_port(p) for p in rule.ports]
        out.append(item)
    return out


def network_policies(state: RunState, namespace: str | None = None) -> list:
    """NetworkPolicies as stored: defaults filled in (policyTypes, protocol TCP) and every
    ipBlock CIDR masked, as the testbed applies it."""
    out = []
    for key, rec in sorted(state.policies.items()):
        p = rec.policy
        if not _in(p.namespace, namespace):
            continue
        spec = {"podSelector": _selector(p.pod_selector), "policyTypes": list(p.policy_types)}
        if p.ingress:
            spec["ingress"] = _rules(p.ingress, "from")
        if p.egress:
            spec["egress"] = _rules(p.egress, "to")
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": _meta(p.name, p.namespace, created=rec.created),
                    "spec": spec})
    return out


def namespaces(state: RunState, namespace: str | None = None) -> list:
    """Those applied, the defaults, and any a topology's pods live in."""
    known = {n: NamespaceRecord() for n in DEFAULT_NAMESPACES}
    known.update({rec.namespace: NamespaceRecord() for rec in state.pods.values()})
    known.update(state.namespaces)
    out = []
    for name, rec in sorted(known.items()):
        labels = {**rec.labels, pol.NAMESPACE_NAME_LABEL: name}
        out.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": _meta(name, labels=labels, created=rec.created or state.created),
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    return out


def endpoint_slices(state: RunState, namespace: str | None = None) -> list:
    """EndpointSlices as the EndpointSlice controller writes them, topology hints included
    (kubeproxy/endpointslices.py)."""
    out = []
    for key, rec in sorted(state.services.items()):
        ns = key.split("/", 1)[0]
        if not _in(ns, namespace) or rec.type == "ExternalName":
            continue
        for family in rec.ip_families or [IPV4]:  # a set of slices per address type
            for obj in endpointslices.slices(state, key, service_endpoints(state, key, family),
                                             family):
                obj["metadata"] = _meta(obj["metadata"]["name"], ns,
                                        obj["metadata"]["labels"], rec.created)
                out.append(obj)
    return out


def ingresses(state: RunState, namespace: str | None = None) -> list:
    """Ingresses with the controller's address in their status, as ingress-nginx writes it."""
    controller = state.services.get("ingress-nginx/ingress-nginx-controller")
    address = controller.load_balancer_ip if controller else ""
    out = []
    for key, rec in sorted(state.ingresses.items()):
        ns, name = key.split("/", 1)
        if not _in(ns, namespace):
            continue
        status = {"loadBalancer": {"ingress": [{"ip": address}]} if address else {}}
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": _meta(name, ns, created=rec["created"]),
                    "spec": rec["spec"], "status": status})
    return out


def ingress_classes(state: RunState, namespace: str | None = None) -> list:
    out = []
    for name, rec in sorted(state.ingress_classes.items()):
        notes = {"ingressclass.kubernetes.io/is-default-class": "true"} if rec["default"] \
            else None
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                    "metadata": _meta(name, created=state.created, annotations=notes),
                    "spec": {"controller": rec["controller"]}})
    return out


def secrets(state: RunState, namespace: str | None = None) -> list:
    out = []
    for key, rec in sorted(state.secrets.items()):
        ns, name = key.split("/", 1)
        if _in(ns, namespace):
            out.append({"apiVersion": "v1", "kind": "Secret", "type": rec["type"],
                        "metadata": _meta(name, ns, created=state.created),
                        "data": dict(rec["data"])})
    return out


# kubectl's names for each resource (plural, singular, short) -> (lister, namespaced?)
RESOURCES = {
    "pods": (pods, True), "nodes": (nodes, False), "services": (services, True),
    "endpoints": (endpoints, True), "endpointslices": (endpoint_slices, True),
    "networkpolicies": (network_policies, True), "ingresses": (ingresses, True),
    "ingressclasses": (ingress_classes, False), "secrets": (secrets, True),
    "namespaces": (namespaces, False),
}
ALIASES = {"pod": "pods", "po": "pods", "node": "nodes", "no": "nodes", "service": "services",
           "svc": "services", "ep": "endpoints", "endpointslice": "endpointslices",
           "networkpolicy": "networkpolicies", "ingress": "ingresses", "ing": "ingresses",
           "ingressclass": "ingressclasses", "secret": "secrets",
           "netpol": "networkpolicies", "namespace": "namespaces", "ns": "namespaces"}
for _name in RESOURCES:
    ALIASES[_name] = _name


def listing(items: list) -> dict:
    """kubectl's `-o json` of several objects."""
    return {"apiVersion": "v1", "kind": "List", "items": items,
            "metadata": {"resourceVersion": ""}}
