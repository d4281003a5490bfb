"""Decoding and field validation as kube-apiserver does them, with the kind's schema (the
fields of k8s.io/api's messages, wire_schema.json):

- a value of the wrong JSON type (`name: true` where a string goes, `replicas: "3"`) refuses
  the object whatever the validation mode, in Go's decoder's words (`json: cannot unmarshal
  bool into Go struct field EnvVar.spec.template.spec.containers.env.name of type string`);
- `fieldValidation=Strict|Warn|Ignore`: the fields the kind does not have. kubectl sends
  Strict: an unknown field refuses the object, naming it (`unknown field
  "spec.containers[0].imagee"`); Warn, the server's default, accepts it with a Warning header
  per field; Ignore says nothing."""
import functools
import re

from .protobuf import SCALARS, schema
from .status import ApiError

FREE_FORM = ("meta.v1.Time", "meta.v1.MicroTime", "meta.v1.Duration", "meta.v1.FieldsV1",
             "resource.Quantity", "intstr.IntOrString", "runtime.RawExtension")
MODES = ("Strict", "Warn", "Ignore")


@functools.cache  # the schema does not change while the server runs
def fields_by_name(message: str) -> dict:
    """{JSON name: field} of a message; an inlined field's own fields stand in its place."""
    out = {}
    for spec in schema()["messages"].get(message, {}).values():
        if spec[4]:
            out.update(fields_by_name(spec[1]))
        else:
            out[spec[0]] = spec
    return out


def _walk(value, message: str, path: str, out: list) -> None:
    if message.endswith(FREE_FORM) or not isinstance(value, dict):
        return
    fields = fields_by_name(message)
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


QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


def _json_type(value) -> str:
    """How Go's decoder names a JSON value it could not store (a number with its digits
    when it does not fit an integer)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, int):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _go_type(kind: str) -> str:
    """The Go type of a message or scalar as reflect prints it (v1.EnvVar, int32)."""
    if kind in SCALARS:
        return {"bytes": "[]uint8", "double": "float64", "float": "float32"}.get(kind, kind)
    package, _, short = kind.rpartition(".")
    return f"{package.rsplit('.', 1)[-1]}.{short}"


def _fits(value, kind: str) -> bool:
    if kind in ("string", "bytes"):
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind in ("double", "float"):
        return isinstance(value, (int, float))
    return isinstance(value, int)  # 1.5 is no int32


class _Mistyped(Exception):
    """The first value of the wrong type, in Go's words."""


def _free_form(value, message: str) -> None:
    """Types that decode themselves (their own UnmarshalJSON)."""
    if message.endswith("intstr.IntOrString"):
        if not isinstance(value, str) and not _fits(value, "int32"):
            raise _Mistyped(f"json: cannot unmarshal {_json_type(value)} into Go value of "
                            "type int32")
    elif message.endswith("resource.Quantity"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or \
                not QUANTITY.match(str(value)):
            raise _Mistyped("quantities must match the regular expression "
                            f"'{QUANTITY.pattern}'")
    elif message.endswith(("meta.v1.Time", "meta.v1.MicroTime", "meta.v1.Duration")):
        if not isinstance(value, str):
            raise _Mistyped(f"json: cannot unmarshal {_json_type(value)} into Go value of "
                            "type string")


def _typed(value, message: str, path: str) -> None:
    """Raise _Mistyped at the first value of `value` (a `message`) of the wrong type."""
    struct, fields = message.rsplit(".", 1)[1], fields_by_name(message)
    for name, item in value.items():  # in the document's order, as Go decodes it
        spec = fields.get(name)
        if spec is None or item is None:  # unknown (Strict's to name), or null: zero value
            continue
        where = f"{path}.{name}" if path else name
        _name, kind, extra = spec[:3]

        def wrong(go_type, item=item, where=where):
            return _Mistyped(f"json: cannot unmarshal {_json_type(item)} into Go struct field "
                             f"{struct}.{where} of type {go_type}")
        if kind == "map":
            if not isinstance(item, dict):
                raise wrong(f"map[{extra[0]}]{_go_type(extra[1])}")
            entries, kind = list(item.values()), extra[1]
        elif extra:
            if not isinstance(item, list):
                raise wrong(f"[]{_go_type(kind)}")
            entries = item
        else:
            entries = [item]
        for entry in entries:
            if entry is None:
                continue
            if kind in SCALARS:
                if not _fits(entry, kind):
                    raise wrong(_go_type(kind), entry)
            elif kind.endswith(FREE_FORM):
                _free_form(entry, kind)
            elif not isinstance(entry, dict):
                raise wrong(_go_type(kind), entry)
            else:
                _typed(entry, kind, where)


def type_error(obj: dict, api_version: str, kind: str) -> str | None:
    """Go's decoder's words for the first value of `obj` of the wrong type, or None."""
    message = schema()["kinds"].get(f"{api_version}/{kind}")
    if message is None or not isinstance(obj, dict):
        return None
    try:
        _typed(obj, message, "")
    except _Mistyped as e:
        return str(e)
    return None


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
    handled = f'{kind} in version "{api_version.rsplit("/", 1)[-1]}" cannot be handled as a ' \
              f"{kind}: "
    mistyped = type_error(obj, api_version, kind)
    if mistyped:
        raise ApiError(400, handled + mistyped)
    if mode == "Ignore":
        return []
    found = unknown_fields(obj, api_version, kind)
    if not found:
        return []
    if mode == "Strict":
        raise ApiError(400, handled + "strict decoding error: " +
                       ", ".join(f'unknown field "{f}"' for f in found))
    return [f'299 - "unknown field \\"{f}\\""' for f in found]
