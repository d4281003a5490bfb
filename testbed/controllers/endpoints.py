"""Endpoints and EndpointSlices in the API, as the endpoints and EndpointSlice controllers
write them: for every Service with a selector, the pods it picks now (and for
default/kubernetes, the API server's address inside the emulation) (rendered as `testbed
get endpoints` renders them, from the computation the nodes' kube-proxy rules are made
from), written when they change; those of a Service that is gone are deleted."""
from testbed.api import objects
from testbed.api.apply import Applying

from .client import ApiClient

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


class EndpointsController:
    def __init__(self, client: ApiClient):
        self.client = client
        self.written = {}  # API path -> the document written
        self.swept = False  # slices left by an earlier owner looked for once

    def sync(self, cluster: Applying) -> None:
        state = cluster.state
        # a Service without a selector has the endpoints it is given: ours only for the
        # addresses the testbed gives it (default/kubernetes), not a user's own Endpoints
        selecting = {key for key, rec in state.services.items()
                     if rec.selector or rec.addresses}
        wanted = {}
        for collection, made in (
                ("/api/v1/namespaces/{}/endpoints", objects.endpoints(state)),
                ("/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices",
                 objects.endpoint_slices(state))):
            for doc in made:
                meta = doc["metadata"]
                service = (meta.get("labels") or {}).get("kubernetes.io/service-name",
                                                         meta["name"])
                if f"{meta['namespace']}/{service}" not in selecting:
                    continue  # a Service without selector: its endpoints are not ours
                meta.pop("creationTimestamp", None)  # the API server's to set
                wanted.setdefault(collection.format(meta["namespace"]), []).append(doc)
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
