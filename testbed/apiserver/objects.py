"""What the API server does to an object on its way into etcd, as kube-apiserver does it:
checks of names and required fields (422 Invalid with field causes), defaults (a Pod's
restartPolicy, a container's imagePullPolicy, a Namespace's phase, ...), server-set metadata
(uid, creationTimestamp, generation), and the fields an update may not change."""
import copy
import re
import time
import uuid

from testbed.api.objects import timestamp

from .resources import Resource
from .status import ApiError, invalid

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric "
                 "character (e.g. 'example.com', regex used for validation is "
                 r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_1123_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                  "characters or '-', and must start and end with an alphanumeric character "
                  "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
LABEL_1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                  "'-', start with an alphabetic character, and end with an alphanumeric "
                  "character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
                  "'[a-z]([-a-z0-9]*[a-z0-9])?')")
# resources whose names are labels rather than subdomains
LABEL_NAMES = {"namespaces": (LABEL_1123, LABEL_1123_MSG, 63),
               "services": (LABEL_1035, LABEL_1035_MSG, 63)}
GENERATED_SUFFIX = 5
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.String alphabet


def now_stamp() -> str:
    return timestamp(time.time())


def _random_suffix():
    raw = uuid.uuid4().int
    out = ""
    for _ in range(GENERATED_SUFFIX):
        raw, digit = divmod(raw, len(SUFFIX_ALPHABET))
        out += SUFFIX_ALPHABET[digit]
    return out


def name_problem(resource: Resource, name: str) -> str | None:
    pattern, message, longest = LABEL_NAMES.get(resource.name,
                                                (SUBDOMAIN, SUBDOMAIN_MSG, 253))
    if len(name) > longest:
        return f"must be no more than {longest} characters"
    if not pattern.match(name):
        return message
    return None


def _check_meta(resource, obj, causes):
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        causes.append(("metadata.name", "Required value", "name or generateName is required"))
        return
    name = meta.get("name")
    if not name:
        causes.append(("metadata.name", "Required value", "name or generateName is required"))
    elif not isinstance(name, str):
        causes.append(("metadata.name", "Invalid value", f"{name!r}: must be a string"))
    else:
        problem = name_problem(resource, name)
        if problem:
            causes.append(("metadata.name", "Invalid value", f'"{name}": {problem}'))
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is not None and (not isinstance(values, dict) or
                                   not all(isinstance(v, str) for v in values.values())):
            causes.append((f"metadata.{field}", "Invalid value",
                           "must be a map of string keys to string values"))


def _check_containers(spec, prefix, causes):
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append((f"{prefix}.containers", "Required value", ""))
        return
    seen = set()
    for i, c in enumerate(containers):
        where = f"{prefix}.containers[{i}]"
        if not isinstance(c, dict):
            causes.append((where, "Invalid value", "must be an object"))
            continue
        name = c.get("name")
        if not name:
            causes.append((f"{where}.name", "Required value", ""))
        elif not isinstance(name, str) or not LABEL_1123.match(name):
            causes.append((f"{where}.name", "Invalid value", f'"{name}": {LABEL_1123_MSG}'))
        elif name in seen:
            causes.append((f"{where}.name", "Duplicate value", f'"{name}"'))
        seen.add(name)
        if not c.get("image"):
            causes.append((f"{where}.image", "Required value", ""))
        for j, port in enumerate(c.get("ports") or []):
            number = port.get("containerPort") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 1 <= number <= 65535:
                causes.append((f"{where}.ports[{j}].containerPort",
                               "Required value" if number is None else "Invalid value",
                               "" if number is None else
                               f"{number}: must be between 1 and 65535, inclusive"))


def _keep_allocated(old: dict, new: dict) -> None:
    """What an update leaves empty of a Service's allocations keeps the old values, as the
    registry's patchAllocatedValues does: the ClusterIP(s), and each port's nodePort while the
    Service still has node ports."""
    if not new.get("clusterIP") and old.get("clusterIP"):
        new["clusterIP"] = old["clusterIP"]
        if old.get("clusterIPs"):
            new["clusterIPs"] = old["clusterIPs"]
    if new.get("type") in ("NodePort", "LoadBalancer"):
        before = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                  for p in old.get("ports") or [] if isinstance(p, dict)}
        for port in new.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                kept = before.get((port.get("port"), port.get("protocol", "TCP")))
                if kept:
                    port["nodePort"] = kept
        if not new.get("healthCheckNodePort") and old.get("healthCheckNodePort"):
            new["healthCheckNodePort"] = old["healthCheckNodePort"]


def _check_service(spec, causes):
    ports = spec.get("ports") or []
    if spec.get("type", "ClusterIP") != "ExternalName" and not ports and \
            spec.get("clusterIP") != "None":
        causes.append(("spec.ports", "Required value", ""))
    for i, port in enumerate(ports):
        number = port.get("port") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append((f"spec.ports[{i}].port", "Invalid value",
                           f"{number}: must be between 1 and 65535, inclusive"))
    kind = spec.get("type", "ClusterIP")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(("spec.type", "Unsupported value", f'"{kind}": supported values: '
                       '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'))


def validate(resource: Resource, obj: dict) -> None:
    """422 Invalid with every cause found, as kube-apiserver lists them."""
    causes = []
    _check_meta(resource, obj, causes)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    if resource.name == "pods":
        _check_containers(spec, "spec", causes)
    elif resource.name in ("deployments", "replicasets"):
        template = spec.get("template") or {}
        _check_containers(template.get("spec") or {}, "spec.template.spec", causes)
        selector = (spec.get("selector") or {})
        if not selector:
            causes.append(("spec.selector", "Required value", ""))
        labels = (template.get("metadata") or {}).get("labels") or {}
        wanted = selector.get("matchLabels") or {}
        if selector and any(labels.get(k) != v for k, v in wanted.items()):
            causes.append(("spec.template.metadata.labels", "Invalid value",
                           f"{labels}: `selector` does not match template `labels`"))
    elif resource.name == "services":
        _check_service(spec, causes)
    if causes:
        name = (obj.get("metadata") or {}).get("name") or ""
        raise invalid(resource.kind, name, causes, resource.group)


def _pull_policy(image):
    tag = image.rsplit("/", 1)[-1]
    return "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"


def _default_pod_spec(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        if isinstance(c, dict):
            c.setdefault("imagePullPolicy", _pull_policy(str(c.get("image", ""))))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def defaults(resource: Resource, obj: dict) -> dict:
    """The object with the defaults kube-apiserver fills in."""
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {}) if resource.name in (
        "pods", "services", "deployments", "replicasets", "namespaces") else out.get("spec")
    if resource.name == "pods":
        _default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        status = out.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", "BestEffort")
    elif resource.name in ("deployments", "replicasets"):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if resource.name == "deployments":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            if not strategy.get("type"):  # as SetDefaults_Deployment: an empty type too
                strategy["type"] = "RollingUpdate"
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        _default_pod_spec(template.setdefault("spec", {}))
        out.setdefault("status", {})
    elif resource.name == "services":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        out.setdefault("status", {"loadBalancer": {}})
    elif resource.name == "namespaces":
        spec.setdefault("finalizers", ["kubernetes"])
        out.setdefault("status", {})["phase"] = "Active"
        labels = out["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = out["metadata"]["name"]
    return out


def prepare_create(resource: Resource, obj: dict, namespace: str | None) -> dict:
    """A new object's server-set metadata, defaults and checks; 422 for what is invalid."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and not meta.get("name") and meta.get("generateName"):
        meta["name"] = f"{meta['generateName']}{_random_suffix()}"
    validate(resource, obj)
    out = defaults(resource, obj)
    meta = out["metadata"]
    for server_set in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp",
                       "selfLink"):
        meta.pop(server_set, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_stamp()
    if resource.namespaced:
        meta["namespace"] = namespace
    if "spec" in out and resource.name not in ("namespaces", "pods", "services"):
        meta["generation"] = 1
    return out


def prepare_update(resource: Resource, old: dict, new: dict, subresource: str = "") -> dict:
    """An update's object: what the server owns kept from `old`; the status subresource
    changes status only, the main resource everything but status; generation moves when the
    spec does; 422 Forbidden for a Pod spec change kube-apiserver refuses."""
    out = copy.deepcopy(new)
    meta = out.setdefault("metadata", {})
    old_meta = old["metadata"]
    for kept in ("uid", "creationTimestamp", "namespace", "name", "generation",
                 "deletionTimestamp"):
        if kept in old_meta:
            meta[kept] = old_meta[kept]
    meta.pop("resourceVersion", None)
    if subresource == "status":
        out = {**copy.deepcopy(old), "status": out.get("status", {})}
        out["metadata"] = {**copy.deepcopy(old_meta)}
        out["metadata"].pop("resourceVersion", None)
        return out
    if "status" in old and resource.name not in ("namespaces",):
        out["status"] = copy.deepcopy(old["status"])
    validate(resource, out)
    out = defaults(resource, out)
    if resource.name == "pods":
        _check_pod_update(old, out)
    if resource.name == "services":
        _keep_allocated(old.get("spec") or {}, out.setdefault("spec", {}))
        _check_immutable(resource, old, out, ("spec", "clusterIP"))
    if resource.name in ("deployments", "replicasets"):
        _check_immutable(resource, old, out, ("spec", "selector"))
    if old.get("spec") != out.get("spec") and "generation" in old_meta:
        out["metadata"]["generation"] = old_meta["generation"] + 1
    return out


def _check_immutable(resource, old, new, path):
    before, after = old, new
    for part in path:
        before = (before or {}).get(part)
        after = (after or {}).get(part)
    if before is not None and before != after:
        raise invalid(resource.kind, old["metadata"]["name"], [(
            ".".join(path), "Invalid value", f"{after!r}: field is immutable")],
            resource.group)


def _check_pod_update(old, new):
    """kube-apiserver lets a Pod's spec change only in its images, activeDeadlineSeconds,
    tolerations (additions) and terminationGracePeriodSeconds."""
    def mutable_cleared(spec):
        spec = copy.deepcopy(spec)
        for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
            spec.pop(key, None)
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            c.pop("image", None)
        return spec
    if mutable_cleared(old.get("spec", {})) != mutable_cleared(new.get("spec", {})):
        raise ApiError(422, f'Pod "{old["metadata"]["name"]}" is invalid: spec: Forbidden: '
                       "pod updates may not change fields other than "
                       "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                       "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                       "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it "
                       "to be set to 1 if it was previously negative)", "Invalid",
                       {"name": old["metadata"]["name"], "kind": "Pod", "causes": [
                           {"reason": "FieldValueForbidden", "field": "spec",
                            "message": "Forbidden: pod updates may not change fields other "
                                       "than ..."}]})
