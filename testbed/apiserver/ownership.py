"""Field ownership, as kube-apiserver keeps it in managedFields (structured-merge-diff's field
sets, encoded as FieldsV1): who set each field, so that server-side apply can refuse to take a
field another manager set to another value (a conflict, unless forced) and remove the fields
a manager applied before and leaves out now.

A field set is a set of paths; a path's elements are FieldsV1's: `f:<name>` a field or map
key, `k:{"name":"web"}` an item of a list merged by key (k8s.io/api's patchMergeKey), `v:<json>`
an item of a list of primitives merged as a set; any other list is owned whole."""
import json
from typing import Any

from .fields import FREE_FORM, fields_by_name, patch_tags
from .objects import now_stamp
from .protobuf import SCALARS
from .status import ApiError

MISSING = object()
SERVER_SET = {"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation",
              "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}


def _key(item: dict, key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"), sort_keys=True)


def _walk(value: dict, message: str, prefix: tuple, out: set) -> None:
    fields, tags = fields_by_name(message), patch_tags(message)
    for name, item in value.items():
        path = prefix + (f"f:{name}",)
        spec = fields.get(name)
        if spec is None or item is None or not isinstance(item, (dict, list)) or \
                spec[1].endswith(FREE_FORM):
            out.add(path)
            continue
        kind, extra = spec[1], spec[2]
        strategy, key = tags.get(name, ("", None))
        if kind == "map" and isinstance(item, dict):
            out.add(path)
            for entry_key, entry in item.items():
                entry_path = path + (f"f:{entry_key}",)
                out.add(entry_path)
                if isinstance(entry, dict) and extra[1] not in SCALARS:
                    _walk(entry, extra[1], entry_path, out)
        elif extra is True and isinstance(item, list) and "merge" in strategy:
            out.add(path)
            for entry in item:
                if key and isinstance(entry, dict):
                    entry_path = path + (_key(entry, key),)
                    out.add(entry_path)
                    _walk(entry, kind, entry_path, out)
                elif not key:
                    out.add(path + ("v:" + json.dumps(entry, separators=(",", ":")),))
        elif isinstance(item, dict) and kind not in SCALARS:
            before = len(out)
            _walk(item, kind, path, out)
            if len(out) == before:  # an empty struct is a field of its own
                out.add(path)
        else:
            out.add(path)  # a scalar, or a list owned whole


def field_set(obj: dict, message: str, status: bool = False) -> set:
    """The paths `obj` sets: its spec side (metadata's labels, annotations, ownerReferences,
    finalizers, and everything but status), or with status=True its status alone."""
    out: set = set()
    if status:
        if isinstance(obj.get("status"), dict):
            _walk({"status": obj["status"]}, message, (), out)
        return out
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    meta = body.get("metadata")
    if isinstance(meta, dict):
        body["metadata"] = {k: v for k, v in meta.items()
                            if k not in SERVER_SET | {"name", "namespace", "generateName"}}
        if not body["metadata"]:
            del body["metadata"]
    _walk(body, message, (), out)
    return out


def value_at(obj: Any, path: tuple) -> Any:
    """The value a path names in an object, or MISSING."""
    here = obj
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f" and isinstance(here, dict) and text in here:
            here = here[text]
        elif kind == "k" and isinstance(here, list):
            wanted = json.loads(text)
            here = next((i for i in here if isinstance(i, dict) and
                         all(i.get(k) == v for k, v in wanted.items())), MISSING)
        elif kind == "v" and isinstance(here, list):
            value = json.loads(text)
            here = value if value in here else MISSING
        else:
            return MISSING
        if here is MISSING:
            return MISSING
    return here


def remove(obj: Any, path: tuple) -> None:
    """Take the field (or list item) a path names out of an object, if it is there."""
    parent = value_at(obj, path[:-1])
    kind, _, text = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(text, None)
    elif kind in ("k", "v") and isinstance(parent, list):
        item = value_at(obj, path)
        if item is not MISSING:
            parent.remove(item)


def encode(paths: set) -> dict:
    """A field set as FieldsV1: nested objects of path elements, "." marking a member that
    also has members below it."""
    tree: dict = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})

    def mark(node, prefix):
        for element, child in node.items():
            path = prefix + (element,)
            mark(child, path)
            if child and path in paths:
                child["."] = {}
    mark(tree, ())
    return tree


def decode(fields: dict, prefix: tuple = ()) -> set:
    out = set()
    for element, child in (fields or {}).items():
        if element == ".":
            out.add(prefix)
            continue
        path = prefix + (element,)
        if child:
            out |= decode(child, path)
        else:
            out.add(path)
    return out


def as_text(path: tuple) -> str:
    """A path as kube-apiserver names it in a conflict: .spec.replicas,
    .spec.containers[name="web"].image."""
    out = ""
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f":
            out += f".{text}"
        elif kind == "k":
            out += "[" + ",".join(f"{k}={json.dumps(v)}"
                                  for k, v in json.loads(text).items()) + "]"
        else:
            out += f"[={text}]"
    return out


def _entry(manager: str, operation: str, api_version: str, paths: set,
           subresource: str = "") -> dict:
    return {"manager": manager, "operation": operation, "apiVersion": api_version,
            "time": now_stamp(), "fieldsType": "FieldsV1", "fieldsV1": encode(paths),
            **({"subresource": subresource} if subresource else {})}


def _changed(old: dict, new: dict, paths: set) -> set:
    """The paths of `new` an update set: new ones, and leaves whose value changed (a list
    item or map whose members changed is not itself changed)."""
    holders = {path[:-1] for path in paths}  # a list or map with members of its own
    out = set()
    for path in paths:
        before = value_at(old, path)
        if before is MISSING or (path not in holders and not isinstance(before, dict) and
                                 before != value_at(new, path)):
            out.add(path)
    return out


def after_update(entries: list, manager: str, api_version: str, old: dict, new: dict,
                 message: str, subresource: str = "") -> list:
    """managedFields after a create, update or patch (an "Update", as kube-apiserver records
    it): what the request changed is the manager's and no longer anyone else's; what left
    the object is no one's."""
    changed = _changed(old, new, field_set(new, message, subresource == "status"))
    out, mine = [], False
    for entry in entries:
        paths = {p for p in decode(entry.get("fieldsV1")) if value_at(new, p) is not MISSING}
        if (entry.get("manager"), entry.get("operation"), entry.get("subresource", "")) == \
                (manager, "Update", subresource):
            mine = True
            if changed - paths:
                entry = {**entry, "time": now_stamp()}
            paths |= changed
        else:
            paths -= changed
        if paths:
            out.append({**entry, "fieldsV1": encode(paths)})
    if not mine and changed:
        out.append(_entry(manager, "Update", api_version, changed, subresource))
    return out


def after_apply(entries: list, manager: str, api_version: str, live: dict, applied: dict,
                merged: dict, message: str, force: bool) -> list:
    """Server-side apply's ownership: 409 naming each field another manager set to another
    value (unless forced: then it is taken from them); the fields this manager applied
    before and no one else owns, left out of `applied` now, removed from `merged`; the
    managedFields after it."""
    wanted = field_set(applied, message)
    previous, others, conflicts = set(), [], []
    for entry in entries:
        paths = decode(entry.get("fieldsV1"))
        if (entry.get("manager"), entry.get("operation")) == (manager, "Apply"):
            previous = paths
            continue
        # another manager: another name, or this name's Updates (kubectl scale's "kubectl")
        clash = {p for p in paths & wanted if not isinstance(value_at(applied, p), dict)
                 and value_at(live, p) not in (MISSING, value_at(applied, p))}
        conflicts += [(entry, p) for p in sorted(clash)]
        others.append((entry, paths - clash))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    held = set().union(*(paths for _entry_, paths in others))
    for path in sorted(previous - wanted - held, key=len, reverse=True):
        remove(merged, path)
    kept = [{**entry, "fieldsV1": encode(paths)} for entry, paths in others if paths]
    return kept + [_entry(manager, "Apply", api_version, wanted)]


def _conflict_error(conflicts: list) -> ApiError:
    def who(entry):
        return f'"{entry.get("manager")}" using {entry.get("apiVersion")}'
    causes = [{"type": "FieldManagerConflict", "message": f"conflict with {who(entry)}",
               "field": as_text(path)} for entry, path in conflicts]
    if len(conflicts) == 1:
        text = f"conflict with {who(conflicts[0][0])}: {causes[0]['field']}"
    else:
        lines = []
        for manager in sorted({who(entry) for entry, _ in conflicts}):
            lines.append(f"conflicts with {manager}:")
            lines += [f"- {as_text(path)}" for entry, path in conflicts if who(entry) == manager]
        text = "\n".join(lines)
    count = f"{len(conflicts)} conflict" + ("s" if len(conflicts) > 1 else "")
    return ApiError(409, f"Apply failed with {count}: {text}", "Conflict",
                    {"causes": causes})
