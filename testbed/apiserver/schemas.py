"""The OpenAPI v3 schemas of the served kinds, as kube-apiserver's /openapi/v3 documents carry
them (components.schemas named io.k8s.api.core.v1.Pod, ...): what `kubectl explain` prints and
what kubectl's client-side apply computes its strategic merge patches from.

Fields, types, required fields and descriptions come from the models of the Kubernetes Python
client (generated from upstream's own OpenAPI, the release kubectl comes from); schema names,
int32/int64 formats and the patch tags (x-kubernetes-patch-strategy/-merge-key) from k8s.io/api
itself (wire_schema.json). A schema is built the first time a document asks for it."""
import functools
import re

from .fields import fields_by_name, patch_tags
from .protobuf import schema as wire

META = "k8s.io.apimachinery.pkg.apis.meta.v1."
# upstream's names for types whose JSON is a primitive: their schemas stand alone so that
# explain names them (IntOrString) and the documents say what they are
PRIMITIVES = {
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True},
    "k8s.io.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
    META + "Time": {"type": "string", "format": "date-time"},
    META + "MicroTime": {"type": "string", "format": "date-time"},
    META + "Duration": {"type": "string"},
    "k8s.io.apimachinery.pkg.runtime.RawExtension": {"type": "object"},
    META + "FieldsV1": {"type": "object"},
}
_CLIENT_NOTES = re.compile(r"\n\s*Attributes:.*", re.S)  # the generator's own docstring tail


def name_of(message: str) -> str:
    """A k8s.io/api message's OpenAPI name: k8s.io.api.core.v1.Pod -> io.k8s.api.core.v1.Pod."""
    return "io.k8s." + message[len("k8s.io."):] if message.startswith("k8s.io.") else message


def _ref(message: str) -> dict:
    return {"$ref": f"#/components/schemas/{name_of(message)}"}


def _model(kind_key: str):
    """The client's model class of apiVersion/kind: v1/Pod -> V1Pod, or with its group's
    name where two groups have the kind (v1/Event -> CoreV1Event)."""
    from kubernetes.client import models  # imported when first needed: it is large

    group_version, kind = kind_key.rsplit("/", 1)
    group, _, version = group_version.rpartition("/")
    prefix = (group.split(".")[0] or "core").capitalize() + version.capitalize()
    return getattr(models, prefix + kind, None) or getattr(models, version.capitalize() + kind)


class _Builder:
    """Converts the client's JSON schema of one kind (pydantic's, with $defs) to upstream's
    shape, collecting every schema it reaches into self.schemas."""

    def __init__(self, schemas: dict):
        self.schemas = schemas
        self.defs: dict = {}

    def kind(self, kind_key: str, message: str) -> None:
        root = _model(kind_key).model_json_schema(by_alias=True)
        self.defs = root.pop("$defs", {})
        group_version, kind = kind_key.rsplit("/", 1)
        group, _, version = group_version.rpartition("/")
        self.message(root, message)
        self.schemas[name_of(message)]["x-kubernetes-group-version-kind"] = [
            {"group": group, "kind": kind, "version": version}]

    def message(self, model: dict, message: str) -> None:
        name = name_of(message)
        if name in self.schemas:
            return
        out = {"type": "object", "description": _CLIENT_NOTES.sub("", model.get("description",
                                                                                 "")).strip()}
        self.schemas[name] = out
        patch = patch_tags(message)
        properties = {}
        for json_name, prop in sorted(model.get("properties", {}).items()):
            field = fields_by_name(message).get(json_name)
            properties[json_name] = converted = self.value(prop, field)
            converted["description"] = prop.get("description") or self._described(converted)
            if json_name in patch:
                strategy, key = patch[json_name]
                converted["x-kubernetes-patch-strategy"] = strategy
                if key:
                    converted["x-kubernetes-patch-merge-key"] = key
        out["properties"] = properties
        if model.get("required"):
            out["required"] = sorted(model["required"])

    def _described(self, converted: dict) -> str:
        """A property the client leaves undescribed (one of an object type): its type's words."""
        inner = converted.get("items") or converted.get("additionalProperties") or converted
        for ref in inner.get("allOf", []):
            return self.schemas.get(ref["$ref"].rsplit("/", 1)[1], {}).get("description", "")
        return ""

    def value(self, prop: dict, field: list | None) -> dict:
        """One property's schema; field is k8s.io/api's [name, type, repeated, ...] for it."""
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        wire_type = field[1] if field else None
        if wire_type in PRIMITIVES or (len(options) > 1 and wire_type is None):
            return {"allOf": [self._reference(wire_type or "k8s.io.apimachinery.pkg.util."
                                                           "intstr.IntOrString", None)]}
        single = options[0] if options else {}
        if single.get("type") == "array":
            item_type = wire_type if field and field[2] else None
            return {"type": "array", "items": self._item(single.get("items", {}), item_type)}
        if single.get("type") == "object" and "additionalProperties" in single:
            value_type = field[2][1] if field and field[1] == "map" else None
            return {"type": "object",
                    "additionalProperties": self._item(single["additionalProperties"],
                                                       value_type)}
        if "$ref" in single:
            return {"allOf": [self._reference(wire_type, single["$ref"])]}
        return self._scalar(single, wire_type)

    def _item(self, item: dict, wire_type: str | None) -> dict:
        if "$ref" in item or wire_type in PRIMITIVES:
            return {"allOf": [self._reference(wire_type, item.get("$ref"))], "default": {}}
        return self._scalar(item, wire_type)

    @staticmethod
    def _scalar(single: dict, wire_type: str | None) -> dict:
        out = {k: single[k] for k in ("type", "format") if k in single} or {"type": "object"}
        if out["type"] == "integer" and wire_type in ("int32", "int64"):
            out["format"] = wire_type
        if out["type"] == "number":
            out["format"] = "double"
        return out

    def _reference(self, wire_type: str | None, ref: str | None) -> dict:
        if wire_type in PRIMITIVES:
            self.schemas.setdefault(name_of(wire_type), dict(PRIMITIVES[wire_type]))
            return _ref(wire_type)
        model = self.defs.get(ref.rsplit("/", 1)[1], {}) if ref else {}
        message = wire_type or _guess(ref)
        self.message(model, message)
        return _ref(message)


def _guess(ref: str) -> str:
    """A message name for a client model k8s.io/api does not have here (a field newer than
    the table): its group is unknown, so it is named as a core type."""
    short = re.sub(r"^(?:[A-Z][a-z]+)*V\d+(?:(?:alpha|beta)\d+)?", "", ref.rsplit("/", 1)[1])
    return f"k8s.io.api.core.v1.{short}"


@functools.lru_cache(maxsize=None)
def for_group_version(group_version: str) -> dict:
    """{schema name: schema} of every served kind of one group version and all it reaches."""
    schemas: dict = {}
    for kind_key, message in sorted(wire()["kinds"].items()):
        if kind_key.rsplit("/", 1)[0] == group_version:
            _Builder(schemas).kind(kind_key, message)
    return dict(sorted(schemas.items()))
