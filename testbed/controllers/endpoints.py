"""Endpoints and EndpointSlices in the API, as the endpoints and EndpointSlice controllers
write them: for every Service with a selector, the pods it picks now (the same computation
the nodes' kube-proxy rules are made from), written when they change; those of a Service
that is gone are deleted."""
import json

from testbed.kubeproxy import endpointslices
from testbed.kubeproxy import services as service_records

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


def endpoints_object(state, key: str, by_port: dict) -> dict:
    """The core/v1 Endpoints of a Service: one subset per set of target ports."""
    namespace, name = key.split("/", 1)
    record = state.services[key]
    subsets = {}
    for port in record.ports:
        for pod, ip, target in by_port[port.name or str(port.port)]:
            subsets.setdefault(pod, (ip, []))[1].append(
                {**({"name": port.name} if port.name else {}), "port": target,
                 "protocol": port.protocol})
    grouped = {}
    for pod, (ip, ports) in sorted(subsets.items(), key=lambda item: item[1][0]):
        grouped.setdefault(json.dumps(ports, sort_keys=True), []).append(
            {"ip": ip, "nodeName": state.pods[pod].node,
             "targetRef": {"kind": "Pod", "namespace": namespace,
                           "name": state.pods[pod].name}})
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace},
            "subsets": [{"addresses": addresses, "ports": json.loads(ports)}
                        for ports, addresses in grouped.items()]}


class EndpointsController:
    def __init__(self, client):
        self.client = client
        self.written = {}  # API path -> the document written
        self.swept = False  # slices left by an earlier owner looked for once

    def sync(self, cluster) -> None:
        state = cluster.state
        wanted = {}
        for key, record in state.services.items():
            if not record.selector:
                continue
            namespace, _name = key.split("/", 1)
            by_port = service_records.endpoints(state, key)
            wanted.setdefault(f"/api/v1/namespaces/{namespace}/endpoints", []).append(
                endpoints_object(state, key, by_port))
            wanted.setdefault(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                              []).extend(endpointslices.slices(state, key, by_port))
        seen = set()
        for collection, docs in wanted.items():
            for doc in docs:
                path = f"{collection}/{doc['metadata']['name']}"
                seen.add(path)
                self._write(collection, path, doc)
        for path in [p for p in self.written if p not in seen]:
            self.client.request("DELETE", path)
            del self.written[path]
        self._drop_stale_slices(seen)

    def _write(self, collection: str, path: str, doc: dict) -> None:
        if self.written.get(path) == doc:
            return
        current = self.client.get(path)
        if current is None:
            code, _ = self.client.request("POST", collection, doc)
        else:
            body = {**doc, "metadata": {**current["metadata"], **doc["metadata"]}}
            code, _ = self.client.request("PUT", path, body)
        if code in (200, 201):
            self.written[path] = doc

    def _drop_stale_slices(self, seen: set) -> None:
        """Slices the controller wrote before this owner started (an adopted cluster) whose
        Service is gone."""
        if self.swept:
            return
        self.swept = True
        listed = self.client.get("/apis/discovery.k8s.io/v1/endpointslices")
        for s in listed["items"] if listed else []:
            meta = s["metadata"]
            path = (f"/apis/discovery.k8s.io/v1/namespaces/{meta['namespace']}/endpointslices/"
                    f"{meta['name']}")
            if (meta.get("labels") or {}).get(MANAGED_BY) and path not in seen:
                self.client.request("DELETE", path)
