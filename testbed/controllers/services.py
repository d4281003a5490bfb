"""Services between the API and the nodes' kube-proxy rules:

- a Service created or changed through the API (kubectl expose, kubectl apply -f) is carried
  into the cluster with the ClusterIP and node ports the API server allocated, so every
  node's rules, its endpoints and its DNS name follow; a LoadBalancer's address is written
  back into its status;
- deleted through the API, its rules go;
- the cluster's own Services (kube-dns, and those `testbed apply -f` made) are written into
  the API with their addresses and ports.
"""
import json

from testbed.api import objects
from testbed.api.apply import Applying
from testbed.model.state import RunState

from .client import ApiClient
from .realise import Refusals, apply_each, delete_object, key_of

CREATED_BY = "testbed.io/created-by"


def fingerprint(svc: dict) -> str:
    """What the cluster implements of a Service: its labels, annotations and spec."""
    meta = svc["metadata"]
    return json.dumps([meta.get("labels"), meta.get("annotations"), svc.get("spec")],
                      sort_keys=True)


def mirror_of(state: RunState, key: str) -> dict:
    """A Service the cluster runs, as `testbed get svc -o json` renders it, marked as the
    cluster's own."""
    namespace, name = key.split("/", 1)
    svc = next(s for s in objects.services(state, namespace) if s["metadata"]["name"] == name)
    meta = svc["metadata"]
    meta.pop("creationTimestamp", None)
    meta["annotations"] = {**(meta.get("annotations") or {}), CREATED_BY: "testbed"}
    return {k: v for k, v in svc.items() if k != "status"}


class ServiceController:
    def __init__(self, client: ApiClient, refusals: "Refusals | None" = None):
        self.client = client
        self.refusals = refusals or Refusals()
        self.applied = {}  # key -> fingerprint carried into the cluster
        self.refused = {}  # key -> the fingerprint the cluster refused
        self.reported = {}  # key -> load-balancer addresses written

    def sync(self, cluster: Applying) -> None:
        api = {key_of(s): s for s in self.client.get("/api/v1/services")["items"]}
        services = cluster.state.services
        mirrored = self._mirrored(api)
        wanted = [s for k, s in api.items()
                  if self.applied.get(k) != fingerprint(s) and k not in mirrored
                  and self.refused.get(k) != fingerprint(s)]
        refused = apply_each(self.client, cluster, "v1", "Service", wanted) if wanted else {}
        for i, svc in enumerate(wanted):
            (self.refused if i in refused else self.applied)[key_of(svc)] = fingerprint(svc)
            self.refusals.settle("Service", key_of(svc), refused.get(i))
        for key in [k for k in services if k not in api]:
            namespace, name = key.split("/", 1)
            if key in self.applied:
                delete_object(cluster, "v1", "Service", namespace, name, {"ports": [
                    {"port": 1}]})
                self.applied.pop(key, None)
            else:
                self._mirror(cluster.state, key)
        for key in mirrored - set(services):  # gone by `testbed delete -f`
            namespace, name = key.split("/", 1)
            self.client.request("DELETE", f"/api/v1/namespaces/{namespace}/services/{name}")
        for key, svc in api.items():
            record = services.get(key)
            if record is not None and record.all_load_balancer_ips:
                self._report(svc, record.all_load_balancer_ips)

    def _mirrored(self, api) -> set:
        """Services the cluster made itself and wrote into the API: already in the cluster."""
        return {k for k, s in api.items()
                if (s["metadata"].get("annotations") or {}).get(CREATED_BY) == "testbed"
                and k not in self.applied}

    def _mirror(self, state, key: str) -> None:
        self.client.mirror(f"/api/v1/namespaces/{key.split('/', 1)[0]}/services",
                           mirror_of(state, key))

    def _report(self, svc: dict, addresses: list[str]) -> None:
        key = key_of(svc)
        ingress = [{"ip": address, "ipMode": "VIP"} for address in addresses]
        if self.reported.get(key) == addresses and \
                (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") == ingress:
            return
        meta = svc["metadata"]
        code, _doc = self.client.request(
            "PATCH", f"/api/v1/namespaces/{meta.get('namespace', 'default')}/services/"
                     f"{meta['name']}/status", {"status": {"loadBalancer": {
                         "ingress": ingress}}}, "application/merge-patch+json")
        if code == 200:
            self.reported[key] = addresses
