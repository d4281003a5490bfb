"""meta.k8s.io/v1 Tables, as kube-apiserver prints them for `kubectl get`: its column
definitions per resource (priority 1 columns are the ones `-o wide` adds), one row per object,
cells already rendered."""
import time

from testbed.api.objects import pod_columns
from testbed.api.tables import selector_text, since

NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace."}
AGE = {"name": "Age", "type": "string", "format": "", "priority": 0,
       "description": "CreationTimestamp is a timestamp representing the server time when this "
                      "object was created."}


def _column(name, priority=0, type_="string"):
    return {"name": name, "type": type_, "format": "", "priority": priority, "description": ""}


def age(obj: dict, now: float) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"), now)


def _pod_row(pod, now):
    spec, status = pod.get("spec", {}), pod.get("status", {})
    ready, reason, restarts = pod_columns(pod)
    gates = spec.get("readinessGates") or []
    return [pod["metadata"]["name"], ready, reason, restarts,
            age(pod, now), status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>",
            f"{len(gates)}/{len(gates)}" if gates else "<none>"]


def _event_row(event, now):
    involved, source = event.get("involvedObject") or {}, event.get("source") or {}
    last = event.get("lastTimestamp") or event.get("firstTimestamp")
    return [since(last, now), event.get("type", ""), event.get("reason", ""),
            f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
            involved.get("fieldPath", ""),
            ", ".join(v for v in (source.get("component"), source.get("host")) if v),
            event.get("message", ""), since(event.get("firstTimestamp"), now),
            str(event.get("count", 1)), event["metadata"]["name"]]


def _node_row(node, now):
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    ready = {"True": "Ready", "False": "NotReady"}.get(conditions.get("Ready"), "Unknown")
    if node.get("spec", {}).get("unschedulable"):
        ready += ",SchedulingDisabled"
    labels = node["metadata"].get("labels", {})
    roles = sorted(k.split("/", 1)[1] for k in labels
                   if k.startswith("node-role.kubernetes.io/")) or ["<none>"]
    addresses = {a["type"]: a["address"] for a in node.get("status", {}).get("addresses", [])}
    info = node.get("status", {}).get("nodeInfo", {})
    return [node["metadata"]["name"], ready, ",".join(roles), age(node, now),
            info.get("kubeletVersion", ""), addresses.get("InternalIP", "<none>"),
            addresses.get("ExternalIP", "<none>"), info.get("osImage", "<unknown>"),
            info.get("kernelVersion", "<unknown>"), info.get("containerRuntimeVersion", "")]


def _service_row(svc, now):
    spec = svc.get("spec", {})
    ports = ",".join(f"{p['port']}" + (f":{p['nodePort']}" if p.get("nodePort") else "") +
                     f"/{p.get('protocol', 'TCP')}" for p in spec.get("ports", [])) or "<none>"
    ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    external = spec.get("externalName") or ",".join(
        [i.get("ip") or i.get("hostname", "") for i in ingress] + spec.get("externalIPs", [])
    ) or ("<pending>" if spec.get("type") == "LoadBalancer" else "<none>")
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [svc["metadata"]["name"], spec.get("type", "ClusterIP"),
            spec.get("clusterIP") or "<none>", external, ports, age(svc, now),
            selector or "<none>"]


def _namespace_row(ns, now):
    return [ns["metadata"]["name"], ns.get("status", {}).get("phase", "Active"), age(ns, now)]


def _configmap_row(cm, now):
    return [cm["metadata"]["name"], len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            age(cm, now)]


def _more(items: list[str]) -> str:
    """At most three, then "+ N more...", as kubectl's printers shorten a list."""
    if not items:
        return "<none>"
    return ",".join(items[:3]) + (f" + {len(items) - 3} more..." if len(items) > 3 else "")


def _endpoints_row(ep, now):
    pairs = [f"{a['ip']}:{p['port']}" for s in ep.get("subsets") or []
             for p in s.get("ports") or [] for a in s.get("addresses") or []]
    return [ep["metadata"]["name"], _more(pairs), age(ep, now)]


def _endpointslice_row(eps, now):
    ports = [str(p.get("port", "")) for p in eps.get("ports") or []]
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    return [eps["metadata"]["name"], eps.get("addressType", ""), ",".join(ports) or "<unset>",
            _more(addresses), age(eps, now)]


def _workload_wide(spec):
    containers = (spec.get("template", {}).get("spec", {}) or {}).get("containers") or []
    selector = ",".join(f"{k}={v}" for k, v in sorted(
        (spec.get("selector") or {}).get("matchLabels", {}).items())) or "<none>"
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers), selector]


def _deployment_row(obj, now):
    spec, status = obj.get("spec", {}), obj.get("status", {})
    return [obj["metadata"]["name"],
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0),
            age(obj, now)] + _workload_wide(spec)


def _replicaset_row(obj, now):
    spec, status = obj.get("spec", {}), obj.get("status", {})
    return [obj["metadata"]["name"], spec.get("replicas", 1), status.get("replicas", 0),
            status.get("readyReplicas", 0), age(obj, now)] + _workload_wide(spec)


def _ingress_row(ing, now):
    spec = ing.get("spec", {})
    hosts = [r["host"] for r in spec.get("rules") or [] if r.get("host")]
    shown = ",".join(hosts[:4]) + (f" + {len(hosts) - 4} more..." if len(hosts) > 4 else "")
    addresses = [i.get("ip") or i.get("hostname", "") for i in
                 ing.get("status", {}).get("loadBalancer", {}).get("ingress") or []]
    return [ing["metadata"]["name"], spec.get("ingressClassName") or "<none>", shown or "*",
            ",".join(addresses), "80, 443" if spec.get("tls") else "80", age(ing, now)]


def _ingress_class_row(cls, now):
    spec = cls.get("spec", {})
    params = spec.get("parameters")
    shown = "<none>" if not params else \
        f"{params.get('kind', '')}.{params.get('apiGroup', '')}/{params.get('name', '')}"
    return [cls["metadata"]["name"], spec.get("controller", ""), shown, age(cls, now)]


def _policy_row(policy, now):
    return [policy["metadata"]["name"],
            selector_text(policy.get("spec", {}).get("podSelector")), age(policy, now)]


def _secret_row(secret, now):
    return [secret["metadata"]["name"], secret.get("type", "Opaque"),
            len(secret.get("data") or {}), age(secret, now)]


def _service_account_row(account, now):
    return [account["metadata"]["name"], len(account.get("secrets") or []), age(account, now)]


WIDE_WORKLOAD = [_column("Containers", 1), _column("Images", 1), _column("Selector", 1)]

TABLES = {
    "pods": ([NAME, _column("Ready"), _column("Status"), _column("Restarts", 0, "string"), AGE,
              _column("IP", 1), _column("Node", 1), _column("Nominated Node", 1),
              _column("Readiness Gates", 1)], _pod_row),
    "nodes": ([NAME, _column("Status"), _column("Roles"), AGE, _column("Version"),
               _column("Internal-IP", 1), _column("External-IP", 1), _column("OS-Image", 1),
               _column("Kernel-Version", 1), _column("Container-Runtime", 1)], _node_row),
    "services": ([NAME, _column("Type"), _column("Cluster-IP"), _column("External-IP"),
                  _column("Port(s)"), AGE, _column("Selector", 1)], _service_row),
    "namespaces": ([NAME, _column("Status"), AGE], _namespace_row),
    "configmaps": ([NAME, _column("Data", 0, "integer"), AGE], _configmap_row),
    "events": ([_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"),
                _column("Subobject", 1), _column("Source", 1), _column("Message"),
                _column("First Seen", 1), _column("Count", 1), {**NAME, "priority": 1}],
               _event_row),
    "endpoints": ([NAME, _column("Endpoints"), AGE], _endpoints_row),
    "endpointslices": ([NAME, _column("AddressType"), _column("Ports"), _column("Endpoints"),
                        AGE], _endpointslice_row),
    "deployments": ([NAME, _column("Ready"), _column("Up-to-date", 0, "integer"),
                     _column("Available", 0, "integer"), AGE] + WIDE_WORKLOAD, _deployment_row),
    "ingresses": ([NAME, _column("Class"), _column("Hosts"), _column("Address"),
                   _column("Ports"), AGE], _ingress_row),
    "ingressclasses": ([NAME, _column("Controller"), _column("Parameters"), AGE],
                       _ingress_class_row),
    "networkpolicies": ([NAME, _column("Pod-Selector"), AGE], _policy_row),
    "secrets": ([NAME, _column("Type"), _column("Data", 0, "integer"), AGE], _secret_row),
    "serviceaccounts": ([NAME, _column("Secrets", 0, "integer"), AGE], _service_account_row),
    "replicasets": ([NAME, _column("Desired", 0, "integer"), _column("Current", 0, "integer"),
                     _column("Ready", 0, "integer"), AGE] + WIDE_WORKLOAD, _replicaset_row),
}


def _partial(obj):
    """The PartialObjectMetadata a row carries (kubectl reads names and namespaces from it)."""
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def table(resource: str, objects: list[dict], list_meta: dict | None = None,
          now: float | None = None) -> dict:
    """The Table of `objects` of one resource, with kube-apiserver's columns for it (Name and
    Age, "Created At" in the API's words, for resources without their own)."""
    now = time.time() if now is None else now
    columns, row_of = TABLES.get(resource, ([NAME, {**AGE, "name": "Created At",
                                                   "type": "date"}], None))
    rows = []
    for obj in objects:
        cells = row_of(obj, now) if row_of else [
            obj["metadata"]["name"], obj["metadata"].get("creationTimestamp")]
        rows.append({"cells": cells, "object": _partial(obj)})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": columns, "rows": rows}
