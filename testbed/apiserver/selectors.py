"""Label and field selectors as the API server parses them from a list's query
(`labelSelector=app=web,tier in (a,b),!canary`, `fieldSelector=spec.nodeName=node1`)."""
import re
from collections.abc import Callable

LABEL_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$")

# fields each resource can be selected by (kube-apiserver's field label conversions), beyond
# metadata.name and metadata.namespace, which every resource has
FIELDS = {
    "pods": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
             "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
             "status.nominatedNodeName"),
    "events": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion",
               "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
               "reportingComponent", "source", "type"),
    "secrets": ("type",),
    "namespaces": ("status.phase",),
    "nodes": ("spec.unschedulable",),
    "replicasets": ("status.replicas",),
}


class SelectorError(ValueError):
    """A selector the API server would refuse (400 BadRequest)."""


def _split_top(text):
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_labels(text: str) -> Callable[[dict], bool]:
    """A predicate over a labels dict; SelectorError for what the API server refuses."""
    requirements = []
    for part in _split_top(text or ""):
        m = LABEL_REQUIREMENT.match(part)
        if not m:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
        key = m["key"]
        if m["neg"]:
            if m["op"] or m["setop"]:
                raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
            requirements.append(lambda labels, k=key: k not in labels)
        elif m["op"] in ("=", "=="):
            requirements.append(lambda labels, k=key, v=m["value"]: labels.get(k) == v)
        elif m["op"] == "!=":
            requirements.append(lambda labels, k=key, v=m["value"]: labels.get(k) != v)
        elif m["setop"]:
            values = {v.strip() for v in m["values"].split(",") if v.strip()}
            if m["setop"] == "in":
                requirements.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                requirements.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        else:
            requirements.append(lambda labels, k=key: k in labels)
    return lambda labels: all(r(labels or {}) for r in requirements)


def field_value(obj: dict, path: str) -> str:
    node = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return ""
    return str(node).lower() if isinstance(node, bool) else str(node)


def parse_fields(text: str, resource: str) -> Callable[[dict], bool]:
    """A predicate over an object; SelectorError naming a field the resource cannot be
    selected by, as kube-apiserver words it."""
    allowed = ("metadata.name", "metadata.namespace") + FIELDS.get(resource, ())
    requirements = []
    for part in _split_top(text or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{part.strip()}'; can't understand "
                                f"'{part.strip()}'")
        field, op, value = m.groups()
        if field not in allowed:
            raise SelectorError(f'field label not supported: {field}')
        if op == "!=":
            requirements.append(lambda o, f=field, v=value: field_value(o, f) != v)
        else:
            requirements.append(lambda o, f=field, v=value: field_value(o, f) == v)
    return lambda obj: all(r(obj) for r in requirements)
