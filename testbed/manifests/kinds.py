"""The Kubernetes objects the testbed builds from manifests, as frozen dataclasses: Namespace,
Pod (and its template and containers), Deployment, Service, NetworkPolicy; the names a
ReplicaSet gives its pods; and NetworkPolicy's record in the run's state file.
"""
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from testbed.errors import TestbedError


class ManifestError(TestbedError):
    def __init__(self, path: str, line: int | None, problem: str):
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple = ()
    args: tuple = ()
    ports: tuple = ()
    env: tuple = ()  # ((name, value), ...)


@dataclass(frozen=True)
class PodDNS:
    """What of a pod's spec names it and sets up its name resolution."""
    policy: str = "ClusterFirst"      # dnsPolicy
    nameservers: tuple = ()           # dnsConfig
    searches: tuple = ()
    options: tuple = ()               # ((name, value or None), ...)
    hostname: str = ""
    subdomain: str = ""
    service_links: bool = True        # enableServiceLinks

    def record(self) -> dict:
        """As the pod's record keeps it (PodRecord.dns)."""
        return {"policy": self.policy, "nameservers": list(self.nameservers),
                "searches": list(self.searches), "options": [list(o) for o in self.options],
                "hostname": self.hostname, "subdomain": self.subdomain,
                "service_links": self.service_links}


@dataclass(frozen=True)
class PodTemplate:
    labels: dict = field(hash=False, compare=False)
    containers: tuple = ()
    node_name: str = ""
    dns: PodDNS = PodDNS()
    host_network: bool = False  # the pod runs in its node's network namespace


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: dict = field(default_factory=dict, hash=False, compare=False)
    source: str = ""
    kind = "Namespace"


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    template: PodTemplate
    source: str = ""
    kind = "Pod"


@dataclass(frozen=True)
class Deployment:
    name: str
    namespace: str
    replicas: int
    selector: dict = field(hash=False, compare=False)
    template: PodTemplate = None
    source: str = ""
    kind = "Deployment"

    @property
    def replica_set(self) -> str:
        """The ReplicaSet's name, as the Deployment controller makes it: the name, a dash, and
        a hash of the pod template in Kubernetes' vowel-free alphabet."""
        return f"{self.name}-{template_hash(self.template)}"


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: object  # an int, or the name of a container port
    name: str = ""
    node_port: int = 0
    protocol: str = "TCP"


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    type: str = "ClusterIP"
    selector: dict = field(default_factory=dict, hash=False, compare=False)
    ports: tuple = ()
    cluster_ip: str = ""        # "" = allocate, "None" = headless
    session_affinity: str = "None"
    external_name: str = ""
    source: str = ""
    external_traffic_policy: str = ""   # "" (not externally accessible), Cluster, Local
    internal_traffic_policy: str = "Cluster"
    external_ips: tuple = ()
    source_ranges: tuple = ()           # loadBalancerSourceRanges, as CIDRs
    health_check_node_port: int = 0     # 0: allocate one if LoadBalancer with policy Local
    affinity_timeout: int = 10800       # sessionAffinityConfig.clientIP.timeoutSeconds
    topology_mode: str = ""             # annotation service.kubernetes.io/topology-mode
    cluster_ips: tuple = ()             # spec.clusterIPs as asked (the first is cluster_ip)
    ip_families: tuple = ()             # spec.ipFamilies as asked ("IPv4", "IPv6")
    ip_family_policy: str = ""          # spec.ipFamilyPolicy as asked ("": not set)
    kind = "Service"


@dataclass(frozen=True)
class Ingress:
    """networking.k8s.io/v1 Ingress; `spec` in the API's shape (manifests/ingress.py)."""
    name: str
    namespace: str
    spec: dict = field(hash=False, compare=False)
    source: str = ""
    kind = "Ingress"


@dataclass(frozen=True)
class IngressClass:
    name: str
    controller: str = ""
    default: bool = False  # annotation ingressclass.kubernetes.io/is-default-class: "true"
    source: str = ""
    kind = "IngressClass"


@dataclass(frozen=True)
class Secret:
    name: str
    namespace: str
    type: str = "Opaque"
    data: dict = field(default_factory=dict, hash=False, compare=False)  # key -> base64
    source: str = ""
    kind = "Secret"


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector; the empty one selects everything."""
    match_labels: tuple = ()       # ((key, value), ...)
    match_expressions: tuple = ()  # ((key, operator, (values...)), ...)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for key, op, values in self.match_expressions:
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and key in labels and labels[key] in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels]
        parts += [f"{k} {op} ({','.join(v)})" if v else f"{k} {op}"
                  for k, op, v in self.match_expressions]
        return ",".join(parts) or "<all>"


@dataclass(frozen=True)
class PolicyPeer:
    """One entry of from/to: pods (by podSelector, in the policy's namespace unless a
    namespaceSelector is given too), all pods of selected namespaces, or an ipBlock."""
    pod_selector: LabelSelector = None
    namespace_selector: LabelSelector = None
    cidr: str = ""
    excepts: tuple = ()


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: object = None  # None: every port; an int, or the name of a container port
    end_port: int = 0


@dataclass(frozen=True)
class PolicyRule:
    peers: tuple = ()  # empty: every peer
    ports: tuple = ()  # empty: every port


@dataclass(frozen=True)
class NetworkPolicy:
    name: str
    namespace: str
    pod_selector: LabelSelector
    policy_types: tuple
    ingress: tuple = ()
    egress: tuple = ()
    source: str = ""
    kind = "NetworkPolicy"




def policy_to_record(policy: "NetworkPolicy") -> dict:
    """A JSON-shaped record (lists, not tuples), as the state file holds it."""
    record = json.loads(json.dumps(dataclasses.asdict(policy)))
    record.pop("source", None)
    return record


def _selector(rec: dict | None) -> "LabelSelector | None":
    if rec is None:
        return None
    return LabelSelector(tuple(tuple(x) for x in rec["match_labels"]),
                         tuple((k, op, tuple(v)) for k, op, v in rec["match_expressions"]))


def policy_from_record(rec: dict) -> "NetworkPolicy":
    def rules(items: list[dict]) -> tuple["PolicyRule", ...]:
        return tuple(PolicyRule(
            tuple(PolicyPeer(_selector(p["pod_selector"]), _selector(p["namespace_selector"]),
                             p["cidr"], tuple(p["excepts"])) for p in r["peers"]),
            tuple(PolicyPort(p["protocol"], p["port"], p["end_port"]) for p in r["ports"]))
            for r in items)
    return NetworkPolicy(rec["name"], rec["namespace"], _selector(rec["pod_selector"]),
                         tuple(rec["policy_types"]), rules(rec["ingress"]), rules(rec["egress"]))

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString


def safe_encode(text: str) -> str:
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def template_hash(template: PodTemplate) -> str:
    """FNV-32a of the template, its decimal digits safe-encoded, as pod-template-hash is."""
    h = 0x811C9DC5
    what = (sorted(template.labels.items()), template.containers, template.node_name)
    if template.dns != PodDNS():  # so that templates without these hash as before
        what += (template.dns,)
    if template.host_network:
        what += ("hostNetwork",)
    for byte in repr(what).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return safe_encode(str(h))


def pod_suffix(seed: str) -> str:
    """The five characters a ReplicaSet appends to each pod's name."""
    return safe_encode(hashlib.sha1(seed.encode()).hexdigest())[:5]


@dataclass
class Manifests:
    objects: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    # (file, the document as plain data) of every document read, in order: what a client of
    # the API server sends on (controllers/applier.py)
    documents: list = field(default_factory=list)
