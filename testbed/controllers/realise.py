"""API objects carried into the cluster through the path `testbed apply -f` takes (the
manifest reader, then apply.py), with the namespaces they need."""
import re

import yaml

from testbed import manifests
from testbed.api import apply
from testbed.api.apply import Applying
from testbed.errors import TestbedError

from .client import ApiClient

SOURCE = "the API server's objects"


class Refusals:
    """What the cluster could not take of the API's objects, by (kind, key), in its words:
    written to the owner's log once, kept for `testbed apply -f` to report."""

    def __init__(self):
        self.messages: dict[tuple[str, str], str] = {}

    def note(self, kind: str, key: str, message: str) -> None:
        message = re.sub(rf"^{re.escape(SOURCE)}(:\d+)?: ", "", message)  # whose, not where
        if self.messages.get((kind, key)) != message:
            print(f"{kind} {key}: {message}", flush=True)
        self.messages[(kind, key)] = message

    def forget(self, kind: str, key: str) -> None:
        self.messages.pop((kind, key), None)

    def settle(self, kind: str, key: str, message: str | None) -> None:
        """After the cluster was given an object: its refusal noted, or (None) forgotten."""
        if message is None:
            self.forget(kind, key)
        else:
            self.note(kind, key, message)


def key_of(obj: dict) -> str:
    """How the cluster's state keys an API object: "<namespace>/<name>", or the name of a
    cluster-scoped one."""
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"]


def as_manifest(obj: dict, api_version: str, kind: str) -> dict:
    """What the cluster implements of an API object (a list's item carries no apiVersion and
    kind: they are given): the server's own fields left out."""
    meta = obj["metadata"]
    out = {"apiVersion": api_version, "kind": kind, "metadata": {
        "name": meta["name"], "labels": meta.get("labels") or {}}}
    if "namespace" in meta:
        out["metadata"]["namespace"] = meta["namespace"]
    if meta.get("annotations"):
        out["metadata"]["annotations"] = meta["annotations"]
    out.update({k: v for k, v in obj.items()  # spec; a Secret's type and data
                if k not in ("apiVersion", "kind", "metadata", "status")})
    return out


def apply_objects(client: ApiClient, cluster: Applying, api_version: str, kind: str,
                  objects: list[dict]) -> None:
    """Apply API objects of one kind to the cluster (TestbedError if the cluster refuses
    them); the namespaces they are in come first where the cluster does not know them yet."""
    missing = {o["metadata"].get("namespace") for o in objects} - set(cluster.state.namespaces)
    missing.discard(None)
    namespaces = [ns for ns in client.get("/api/v1/namespaces")["items"]
                  if ns["metadata"]["name"] in missing] if missing else []
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": ns["metadata"]["name"], "labels": ns["metadata"].get("labels") or {}}}
        for ns in namespaces] + [as_manifest(o, api_version, kind) for o in objects]
    apply.apply(cluster, manifests.parse(yaml.safe_dump_all(docs, sort_keys=False), SOURCE))


def delete_object(cluster: Applying, api_version: str, kind: str, namespace: str | None, name: str,
                  spec: dict) -> None:
    """Remove one object from the cluster as `testbed delete -f` would (namespace None: a
    cluster-scoped one)."""
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    doc = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    if spec:
        doc["spec"] = spec
    apply.delete(cluster, manifests.parse(yaml.safe_dump(doc), SOURCE))


def apply_each(client: ApiClient, cluster: Applying, api_version: str, kind: str,
               objects: list[dict]) -> dict[int, str]:
    """Apply objects of one kind together (each apply rewrites every node's rules once), or
    one at a time if the cluster refuses the set, so that one refused object keeps no other
    out; {index in objects: the cluster's message} of those refused."""
    try:
        apply_objects(client, cluster, api_version, kind, objects)
        return {}
    except TestbedError as e:
        if len(objects) == 1:
            return {0: str(e)}
    refused = {}
    for i, obj in enumerate(objects):
        try:
            apply_objects(client, cluster, api_version, kind, [obj])
        except TestbedError as e:
            refused[i] = str(e)
    return refused
