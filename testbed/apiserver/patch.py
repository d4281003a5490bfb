"""PATCH bodies as kube-apiserver applies them: JSON merge patch (RFC 7386), JSON patch
(RFC 6902) and strategic merge patch (lists of named things merged by their merge key, as the
upstream types' `patchMergeKey` tags say; every other list replaced)."""
import copy
from typing import Any

# list fields merged by key in a strategic merge patch (k8s.io/api's patchMergeKey tags)
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath",
    "volumeDevices": "devicePath", "imagePullSecrets": "name", "hostAliases": "ip",
    "tolerations": None, "conditions": "type", "ownerReferences": "uid",
    "finalizers": None, "addresses": "type", "readinessGates": None,
}
PORT_KEYS = {"ports": ("containerPort", "port")}  # container ports and service ports


class PatchError(ValueError):
    """A patch that cannot be applied (422 or 400, as the caller decides)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merged member by member, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts):
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise PatchError(f"no element {part} in the path")
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise PatchError(f"missing value at {part!r}")
    return node


def _get(doc, parts):
    node = doc
    for part in parts:
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise PatchError(f"no element {part}")
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise PatchError(f"missing value at {part!r}")
    return node


def _add(doc, parts, value):
    if not parts:
        return value
    parent, last = _parent(doc, parts), parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise PatchError(f"index {last} out of range")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError("cannot add to a value that is not an object or array")
    return doc


def _remove(doc, parts):
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent, last = _parent(doc, parts), parts[-1]
    try:
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"unable to remove nonexistent key: {last}")
    return doc


def json_patch(target: Any, operations: list) -> Any:
    """RFC 6902 operations applied in order to a copy of target."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _get(doc, parts)
            doc = _add(_remove(doc, parts), parts, copy.deepcopy(op.get("value"))) if parts \
                else copy.deepcopy(op.get("value"))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise PatchError(f"testing value {op['path']} failed")
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc


def _merge_list(name, target, patch):
    key = MERGE_KEYS.get(name)
    keys = PORT_KEYS.get(name)
    if key is None and keys is None:
        if name in MERGE_KEYS:  # merged as a set of primitives
            return list(target) + [v for v in patch if v not in target]
        return copy.deepcopy(patch)
    out = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict):
            return copy.deepcopy(patch)
        item_key = key if key else next((k for k in keys if k in item), None)
        directive = item.get("$patch")
        match = next((i for i, t in enumerate(out) if isinstance(t, dict) and item_key
                      and t.get(item_key) == item.get(item_key)), None)
        if directive == "delete":
            if match is not None:
                del out[match]
        elif match is not None:
            out[match] = strategic_merge(out[match], item)
        else:
            out.append({k: v for k, v in item.items() if k != "$patch"})
    return out


def strategic_merge(target: Any, patch: Any) -> Any:
    """A strategic merge patch: a merge patch whose lists of named things merge by key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_list(key, out[key], value)
        else:
            out[key] = strategic_merge(out.get(key), value)
    return out
