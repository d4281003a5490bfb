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
from dataclasses import dataclass, field

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


@functools.cache
def patch_tags(message: str) -> dict:
    """{JSON name: (patchStrategy, patchMergeKey)} of a message's lists, its inlined structs'
    too (k8s.io/api's tags, wire_schema.json's "patch")."""
    out = {}
    for spec in schema()["messages"].get(message, {}).values():
        if spec[4]:
            out.update(patch_tags(spec[1]))
    out.update({k: tuple(v) for k, v in schema().get("patch", {}).get(message, {}).items()})
    return out


def _free_form(value, message: str) -> str | None:
    """What is wrong with a value of a type that decodes itself (its own UnmarshalJSON), in
    its words; None if nothing."""
    if message.endswith("intstr.IntOrString"):
        if not isinstance(value, str) and not _fits(value, "int32"):
            return f"json: cannot unmarshal {_json_type(value)} into Go value of type int32"
    elif message.endswith("resource.Quantity"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or \
                not QUANTITY.match(str(value)):
            return f"quantities must match the regular expression '{QUANTITY.pattern}'"
    elif message.endswith(("meta.v1.Time", "meta.v1.MicroTime", "meta.v1.Duration")):
        if not isinstance(value, str):
            return f"json: cannot unmarshal {_json_type(value)} into Go value of type string"
    return None


@dataclass
class _Findings:
    unknown: list = field(default_factory=list)  # paths of fields the kind does not have
    mistyped: str | None = None  # the first value of the wrong type, in Go's words

    def wrong(self, words: str | None) -> None:
        if self.mistyped is None:
            self.mistyped = words


def _walk(value: dict, message: str, path: str, go_path: str, found: _Findings) -> None:
    """One pass over an object (a `message`), in the document's order as Go decodes it:
    unknown fields named with their indices (`spec.containers[1].imagee`), mistyped values
    with Go's field path (`spec.containers.name`)."""
    struct, fields = message.rsplit(".", 1)[1], fields_by_name(message)
    for name, item in value.items():
        where = f"{path}.{name}" if path else name
        go_where = f"{go_path}.{name}" if go_path else name
        spec = fields.get(name)
        if spec is None:
            found.unknown.append(where)
            continue
        if item is None:  # null: the zero value
            continue
        _name, kind, extra = spec[:3]

        def wrong(go_type, value=item, go_where=go_where):
            found.wrong(f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                        f"{struct}.{go_where} of type {go_type}")
        if kind == "map":
            if not isinstance(item, dict):
                wrong(f"map[{extra[0]}]{_go_type(extra[1])}")
                continue
            entries, kind = [(f"{where}[{k}]", v) for k, v in item.items()], extra[1]
        elif extra:
            if not isinstance(item, list):
                wrong(f"[]{_go_type(kind)}")
                continue
            entries = [(f"{where}[{i}]", v) for i, v in enumerate(item)]
        else:
            entries = [(where, item)]
        for at, entry in entries:
            if entry is None:
                continue
            if kind in SCALARS:
                if not _fits(entry, kind):
                    wrong(_go_type(kind), entry)
            elif kind.endswith(FREE_FORM):
                found.wrong(_free_form(entry, kind))
            elif not isinstance(entry, dict):
                wrong(_go_type(kind), entry)
            else:
                _walk(entry, kind, at, go_where, found)


def _findings(obj: dict, api_version: str, kind: str) -> _Findings:
    found = _Findings()
    message = schema()["kinds"].get(f"{api_version}/{kind}")
    if message is not None and isinstance(obj, dict):
        _walk({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}, message, "",
              "", found)
    return found


def type_error(obj: dict, api_version: str, kind: str) -> str | None:
    """Go's decoder's words for the first value of `obj` of the wrong type, or None."""
    return _findings(obj, api_version, kind).mistyped


def unknown_fields(obj: dict, api_version: str, kind: str) -> list[str]:
    """Paths of the fields of `obj` its kind does not have ([] for a kind without schema)."""
    return _findings(obj, api_version, kind).unknown


def check(obj: dict, api_version: str, kind: str, mode: str) -> list[str]:
    """The Warning headers to send (Warn), nothing (Ignore), or 400 BadRequest naming every
    unknown field (Strict), as kube-apiserver words it."""
    if mode not in MODES:
        raise ApiError(400, f"fieldValidation: invalid value {mode!r}: supported values are "
                       "Ignore, Warn and Strict")
    handled = f'{kind} in version "{api_version.rsplit("/", 1)[-1]}" cannot be handled as a ' \
              f"{kind}: "
    findings = _findings(obj, api_version, kind)
    if findings.mistyped:
        raise ApiError(400, handled + findings.mistyped)
    found = findings.unknown
    if mode == "Ignore" or not found:
        return []
    if mode == "Strict":
        raise ApiError(400, handled + "strict decoding error: " +
                       ", ".join(f'unknown field "{f}"' for f in found))
    return [f'299 - "unknown field \\"{f}\\""' for f in found]
