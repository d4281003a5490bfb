"""Field validation as kube-apiserver does it (`fieldValidation=Strict|Warn|Ignore`): the
fields of a request's object that its kind does not have, found with the kind's schema (the
field names of k8s.io/api's messages, wire_schema.json). kubectl sends Strict: an unknown
field refuses the object, naming it (`unknown field "spec.containers[0].imagee"`); Warn, the
server's default, accepts it with a Warning header per field; Ignore says nothing."""
import functools

from .protobuf import SCALARS, schema
from .status import ApiError

FREE_FORM = ("meta.v1.Time", "meta.v1.MicroTime", "meta.v1.Duration", "meta.v1.FieldsV1",
             "resource.Quantity", "intstr.IntOrString", "runtime.RawExtension")
MODES = ("Strict", "Warn", "Ignore")


@functools.cache  # the schema does not change while the server runs
def _by_name(message: str) -> dict:
    """{JSON name: field} of a message; an inlined field's own fields stand in its place."""
    out = {}
    for spec in schema()["messages"].get(message, {}).values():
        if spec[4]:
            out.update(_by_name(spec[1]))
        else:
            out[spec[0]] = spec
    return out


def _walk(value, message: str, path: str, out: list) -> None:
    if message.endswith(FREE_FORM) or not isinstance(value, dict):
        return
    fields = _by_name(message)
    for name, item in value.items():
        where = f"{path}.{name}" if path else name
        spec = fields.get(name)
        if spec is None:
            out.append(where)
            continue
        _name, kind, extra = spec[:3]
        if kind == "map":
            if extra[1] not in SCALARS and isinstance(item, dict):
                for key, entry in item.items():
                    _walk(entry, extra[1], f"{where}[{key}]", out)
        elif kind not in SCALARS:
            if extra and isinstance(item, list):
                for i, entry in enumerate(item):
                    _walk(entry, kind, f"{where}[{i}]", out)
            else:
                _walk(item, kind, where, out)


def unknown_fields(obj: dict, api_version: str, kind: str) -> list[str]:
    """Paths of the fields of `obj` its kind does not have ([] for a kind without schema)."""
    message = schema()["kinds"].get(f"{api_version}/{kind}")
    if message is None or not isinstance(obj, dict):
        return []
    out = []
    _walk({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}, message, "", out)
    return out


def check(obj: dict, api_version: str, kind: str, mode: str) -> list[str]:
    """The Warning headers to send (Warn), nothing (Ignore), or 400 BadRequest naming every
    unknown field (Strict), as kube-apiserver words it."""
    if mode not in MODES:
        raise ApiError(400, f"fieldValidation: invalid value {mode!r}: supported values are "
                       "Ignore, Warn and Strict")
    if mode == "Ignore":
        return []
    found = unknown_fields(obj, api_version, kind)
    if not found:
        return []
    if mode == "Strict":
        raise ApiError(400, f'{kind} in version "{api_version.rsplit("/", 1)[-1]}" cannot be '
                       f"handled as a {kind}: strict decoding error: " +
                       ", ".join(f'unknown field "{f}"' for f in found))
    return [f'299 - "unknown field \\"{f}\\""' for f in found]
