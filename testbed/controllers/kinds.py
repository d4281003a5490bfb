"""Kinds the cluster takes from the API as they are: created or changed through the API, an
object is applied to the cluster as `testbed apply -f` applies it; deleted, it is deleted
from the cluster. Namespaces (their labels select pods for NetworkPolicies), NetworkPolicies
(enforced in every node's rules, as the mode enforces them), Secrets, IngressClasses and
Ingresses (served by the cluster's ingress-nginx). Those the cluster made itself (an addon's
namespace and IngressClass) are written into the API, as kubectl lists them on kind."""
import json
import time
from dataclasses import dataclass

from testbed.api import objects as ko
from testbed.api.apply import Applying
from testbed.apiserver.resources import of_kind
from testbed.model.records import NamespaceRecord

from .client import ApiClient
from .realise import Refusals, apply_each, delete_object, key_of


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    collection: str       # the API path listing every object of the kind
    state_field: str      # the cluster state's dict of them, by "<namespace>/<name>" or name
    delete_spec: dict     # the least spec the manifest reader takes, to name one to delete
    kept: tuple = ()      # objects the cluster always has (never deleted from it)
    own: str = ""         # testbed.api.objects' lister of those the cluster holds
    reports_status: bool = False  # the cluster writes their status (ingress-nginx, Ingresses)


NAMESPACES = Kind("v1", "Namespace", "/api/v1/namespaces", "namespaces", {},
                  ("default", "kube-system", "kube-public", "kube-node-lease"), "namespaces")
SECRETS = Kind("v1", "Secret", "/api/v1/secrets", "secrets", {}, own="secrets")
INGRESS_CLASSES = Kind("networking.k8s.io/v1", "IngressClass",
                       "/apis/networking.k8s.io/v1/ingressclasses", "ingress_classes",
                       {"controller": "k8s.io/ingress-nginx"}, own="ingress_classes")
INGRESSES = Kind("networking.k8s.io/v1", "Ingress", "/apis/networking.k8s.io/v1/ingresses",
                 "ingresses", {"defaultBackend": {"service": {"name": "gone",
                                                              "port": {"number": 80}}}},
                 own="ingresses", reports_status=True)
NETWORK_POLICIES = Kind("networking.k8s.io/v1", "NetworkPolicy",
                        "/apis/networking.k8s.io/v1/networkpolicies", "policies",
                        {"podSelector": {}}, own="network_policies")


def fingerprint(obj: dict) -> str:
    meta = obj["metadata"]
    return json.dumps([meta.get("labels"), meta.get("annotations"),
                       {k: v for k, v in obj.items() if k not in ("metadata", "status")}],
                      sort_keys=True)


class KindController:
    def __init__(self, client: ApiClient, kind: Kind, refusals: "Refusals | None" = None):
        self.client = client
        self.refusals = refusals or Refusals()
        self.kind = kind
        self.applied = {}   # key -> fingerprint carried into the cluster
        self.reported = {}  # key -> the status last written
        self.refused = {}   # key -> fingerprint the cluster refused

    def sync(self, cluster: Applying) -> None:
        kind = self.kind
        api = {key_of(o): o for o in self.client.get(kind.collection)["items"]}
        held = getattr(cluster.state, kind.state_field)
        wanted = []
        for key, obj in api.items():
            mark = fingerprint(obj)
            if self.applied.get(key) == mark or self.refused.get(key) == mark:
                continue
            if kind.kind == "Namespace":
                self._record_namespace(cluster, obj)
                self.applied[key] = mark
                continue
            wanted.append(obj)
        refused = apply_each(self.client, cluster, kind.api_version, kind.kind, wanted) \
            if wanted else {}
        for i, obj in enumerate(wanted):
            (self.refused if i in refused else self.applied)[key_of(obj)] = fingerprint(obj)
            self.refusals.settle(kind.kind, key_of(obj), refused.get(i))
        own = getattr(ko, kind.own)(cluster.state)  # what the cluster holds, in the API's shape
        self._mirror_own(own, api)
        if kind.reports_status:
            self._report(own, api)
        for key in [k for k in held if k not in api and k in self.applied
                    and k not in kind.kept]:
            namespace, _, name = key.rpartition("/")
            delete_object(cluster, kind.api_version, kind.kind, namespace or None, name,
                          kind.delete_spec)
            self.applied.pop(key, None)

    def _mirror_own(self, own: list[dict], api: dict) -> None:
        """Write into the API what the cluster holds that the API never had (an addon's
        objects, a topology's namespaces); from then on the API's copy is followed."""
        kind = self.kind
        for obj in own:
            key = key_of(obj)
            if key in api or key in self.applied or key in self.refused:
                continue
            body = {k: v for k, v in obj.items() if k != "status"}
            body["metadata"] = {k: v for k, v in obj["metadata"].items()
                                if k in ("name", "namespace", "labels", "annotations")}
            path = of_kind(kind.api_version, kind.kind).path(body["metadata"].get("namespace"))
            written = self.client.mirror(path, body)
            if written is not None:
                self.applied[key] = fingerprint(written)

    def _report(self, own: list[dict], api: dict) -> None:
        """The status the cluster gives an object it runs (an Ingress: the controller's
        address), written as a merge patch of /status unless the API has it already."""
        resource = of_kind(self.kind.api_version, self.kind.kind)
        for obj in own:
            key = key_of(obj)
            current = api.get(key)
            if current is None or current.get("status") == obj["status"] or \
                    self.reported.get(key) == (obj["status"], current["metadata"].get("uid")):
                continue
            meta = current["metadata"]
            self.client.write("PATCH", resource.path(meta.get("namespace"), meta["name"]) +
                              "/status", {"status": obj["status"]},
                              "application/merge-patch+json")
            self.reported[key] = (obj["status"], meta.get("uid"))

    @staticmethod
    def _record_namespace(cluster, obj) -> None:
        """A Namespace as apply.py records one, without rewriting every node's rules unless
        its labels changed where NetworkPolicy reads them."""
        name, labels = obj["metadata"]["name"], dict(obj["metadata"].get("labels") or {})
        before = cluster.state.namespaces.get(name)
        if before is not None and before.labels == labels:
            return
        cluster.state.namespaces[name] = NamespaceRecord(
            labels, (before.created if before else None) or time.time())
        cluster.state.save()
        if before is not None and cluster.policy is not None:
            cluster.sync_network()


def followed() -> list[Kind]:
    """In the order they are applied: a namespace before what is in it, a Secret and an
    IngressClass before the Ingress that names them."""
    return [NAMESPACES, NETWORK_POLICIES, SECRETS, INGRESS_CLASSES, INGRESSES]

