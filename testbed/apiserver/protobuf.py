"""Request bodies in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`),
as client-go's typed clients send them: `kubectl create namespace|configmap|deployment|…`.

The envelope is the four bytes `k8s\\0` and a runtime.Unknown message (typeMeta: apiVersion
and kind; raw: the object's own message). The object is decoded with the field numbers of
k8s.io/api's generated.proto (wire_schema.json, written by scripts/k8s_wire_schema.py) into
the JSON document kube-apiserver would have read: names as in JSON, Time as RFC 3339,
Quantity as its string, IntOrString as a number or a string, bytes in base64, maps as
objects. A zero value is left out where Go's JSON leaves it out (a field `omitempty` and not
a pointer: the table says which), so that the stored document is the one JSON would have
given: `replicas: 0` and `automountServiceAccountToken: false`, pointers, stay.
"""
import base64
import datetime
import json
import os
import struct
from collections.abc import Iterator
from typing import Any

from .status import ApiError

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
TIMES = {META + "Time", META + "MicroTime"}
SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float"}
_schema = None


def schema() -> dict:
    global _schema
    if _schema is None:
        with open(os.path.join(os.path.dirname(__file__), "wire_schema.json")) as f:
            _schema = json.load(f)
    return _schema


class WireError(ValueError):
    """The bytes are not the protobuf they claim to be."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise WireError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(number, wire type, value) of each field of one message: an int for varints and
    fixed-width numbers, bytes for length-delimited ones."""
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            if i + 8 > len(data):
                raise WireError("truncated 64-bit field")
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            if i + 4 > len(data):
                raise WireError("truncated 32-bit field")
            value, i = data[i:i + 4], i + 4
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise WireError("truncated length-delimited field")
            value, i = data[i:i + size], i + size
        else:
            raise WireError(f"wire type {wire} is not used by the Kubernetes API")
        yield number, wire, value


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32:
        value = (value + (1 << 31)) % (1 << 32) - (1 << 31)
    return value


def _scalar(kind: str, wire: int, value):
    if kind == "string":
        return value.decode("utf-8", errors="strict")
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "bool":
        return bool(value)
    if kind in ("int32", "int64"):
        return _signed(value, 32 if kind == "int32" else 64)
    if kind in ("uint32", "uint64"):
        return value
    if kind == "double":
        return struct.unpack("<d", value)[0]
    if kind == "float":
        return struct.unpack("<f", value)[0]
    raise WireError(f"type {kind}")


def _packed(kind: str, data: bytes) -> list:
    out, i = [], 0
    while i < len(data):
        if kind in ("double",):
            out.append(struct.unpack("<d", data[i:i + 8])[0])
            i += 8
        elif kind in ("float",):
            out.append(struct.unpack("<f", data[i:i + 4])[0])
            i += 4
        else:
            value, i = _varint(data, i)
            out.append(_scalar(kind, 0, value))
    return out


def _special(message: str, data: bytes):
    """The JSON form of the API's messages that are not objects in JSON; None otherwise."""
    if message in TIMES:
        parts = {n: v for n, _w, v in fields(data)}
        seconds, nanos = _signed(parts.get(1, 0), 64), _signed(parts.get(2, 0), 32)
        if not seconds and not nanos:
            return None
        when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
        if message.endswith("MicroTime"):
            return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    if message == META + "Duration":
        nanos = _signed(next((v for n, _w, v in fields(data) if n == 1), 0), 64)
        return _go_duration(nanos)
    if message.endswith("pkg.api.resource.Quantity"):
        return next((v.decode() for n, _w, v in fields(data) if n == 1), "0")
    if message.endswith("pkg.util.intstr.IntOrString"):
        parts = {n: v for n, _w, v in fields(data)}
        if parts.get(1, 0) == 1:
            return parts.get(3, b"").decode()
        return _signed(parts.get(2, 0), 32)
    if message.endswith("pkg.runtime.RawExtension") or message == META + "FieldsV1":
        raw = next((v for n, _w, v in fields(data) if n == 1), b"")
        return json.loads(raw) if raw.strip() else None
    return ...


def _go_duration(nanos: int) -> str:
    """Go's time.Duration.String() for whole units: 1h2m3s, 1.5s, 250ms, 0s."""
    if nanos == 0:
        return "0s"
    sign, nanos = ("-" if nanos < 0 else ""), abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return f"{sign}{nanos / size:g}{unit}"
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".")
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{sign}{out}{seconds}s"


def decode_message(message: str, data: bytes) -> Any:
    """One message as its JSON value."""
    special = _special(message, data)
    if special is not ...:
        return special
    table = schema()["messages"].get(message)
    if table is None:
        raise WireError(f"message {message} is not served here")
    out = {}
    for number, wire, value in fields(data):
        spec = table.get(str(number))
        if spec is None:
            raise WireError(f"{message.rsplit('.', 1)[1]} has no field {number}")
        name, kind, extra, omit_zero, inline = spec
        if kind == "map":
            entry = {n: v for n, _w, v in fields(value)}
            key_kind, value_kind = extra
            key = _scalar(key_kind, 2, entry.get(1, b"")) if key_kind == "string" else \
                _scalar(key_kind, 0, entry.get(1, 0))
            raw = entry.get(2)
            if raw is None:  # a zero value is left out of a map entry
                raw = 0 if value_kind in SCALARS - {"string", "bytes"} else b""
            out.setdefault(name, {})[key] = _scalar(value_kind, 2, raw) \
                if value_kind in SCALARS else decode_message(value_kind, raw)
            continue
        if kind in SCALARS:
            if extra and wire == 2 and kind not in ("string", "bytes"):
                out.setdefault(name, []).extend(_packed(kind, value))
                continue
            decoded = _scalar(kind, wire, value)
        else:
            if wire != 2:
                raise WireError(f"{name}: a message sent as wire type {wire}")
            decoded = decode_message(kind, value)
            if inline:  # an embedded struct: its fields are the parent's in JSON
                out.update(decoded)
                continue
        if extra:
            out.setdefault(name, []).append(decoded)
        elif decoded is not None and not (omit_zero and decoded in ("", 0, False)):
            out[name] = decoded
    return out


def decode(body: bytes) -> dict:
    """The object a protobuf request body carries, as JSON would have carried it; 400 for
    bytes that are not one of the served kinds in the Kubernetes envelope."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "the body of the request was not in the Kubernetes protobuf "
                       "envelope (it does not start with k8s\\x00)")
    try:
        unknown = {n: v for n, _w, v in fields(body[len(MAGIC):])}
        type_meta = {n: v.decode() for n, _w, v in fields(unknown.get(1, b""))}
        api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        message = schema()["kinds"].get(f"{api_version}/{kind}")
        if message is None:
            raise ApiError(415, f"{api_version or '(no apiVersion)'}, Kind={kind or '(none)'} "
                           "is not served in protobuf here: send it as JSON",
                           "UnsupportedMediaType")
        obj = decode_message(message, unknown.get(2, b""))
    except (WireError, UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, f"the protobuf body could not be decoded: {e}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
