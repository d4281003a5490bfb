"""The resources the API server serves: their groups, kinds, scope, short names, subresources,
and the etcd keys kube-apiserver keeps them under."""
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str          # "" for the core group
    version: str
    name: str           # the plural, as in the URL
    kind: str
    namespaced: bool
    etcd: str           # kube-apiserver's key prefix, under /registry/
    short_names: tuple = ()
    subresources: tuple = ()
    categories: tuple = ()
    verbs: tuple = ALL_VERBS
    singular: str = field(default="")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    def path(self, namespace: str | None = None, name: str = "") -> str:
        """Its URL path: the collection (of one namespace, or of all), or one object."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        within = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{prefix}{within}/{self.name}" + (f"/{name}" if name else "")

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.etcd}/{namespace}/{name}"
        return f"/registry/{self.etcd}/{name}"

    def prefix(self, namespace: str | None = None) -> str:
        """Every object's key starts with this (of one namespace, or of all)."""
        if self.namespaced and namespace:
            return f"/registry/{self.etcd}/{namespace}/"
        return f"/registry/{self.etcd}/"


RESOURCES = (
    Resource("", "v1", "namespaces", "Namespace", False, "namespaces", ("ns",),
             ("status", "finalize")),
    Resource("", "v1", "nodes", "Node", False, "minions", ("no",), ("status", "proxy")),
    Resource("", "v1", "pods", "Pod", True, "pods", ("po",),
             ("status", "log", "exec", "portforward", "attach", "binding", "eviction"),
             ("all",)),
    Resource("", "v1", "services", "Service", True, "services/specs", ("svc",),
             ("status", "proxy"), ("all",)),
    Resource("", "v1", "endpoints", "Endpoints", True, "services/endpoints", ("ep",),
             singular="endpoints"),
    Resource("", "v1", "configmaps", "ConfigMap", True, "configmaps", ("cm",)),
    Resource("", "v1", "secrets", "Secret", True, "secrets"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccounts", ("sa",),
             ("token",)),
    Resource("", "v1", "events", "Event", True, "events", ("ev",)),
    Resource("apps", "v1", "deployments", "Deployment", True, "deployments", ("deploy",),
             ("status", "scale"), ("all",)),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True, "replicasets", ("rs",),
             ("status", "scale"), ("all",)),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True,
             "networkpolicies", ("netpol",), ("status",)),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", True, "ingress", ("ing",),
             ("status",)),
    Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False,
             "ingressclasses"),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True,
             "endpointslices"),
)

BY_PATH = {(r.group, r.version, r.name): r for r in RESOURCES}


def groups() -> dict[str, list[str]]:
    """{group: [versions]} of the named groups (not the core one), in serving order."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out


def find(group: str, version: str, name: str) -> Resource | None:
    return BY_PATH.get((group, version, name))


def of_kind(api_version: str, kind: str) -> Resource | None:
    """The resource a manifest's apiVersion and kind name."""
    group, _, version = api_version.rpartition("/")
    return next((r for r in RESOURCES if (r.group, r.version, r.kind) == (group, version, kind)),
                None)
