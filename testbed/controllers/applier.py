"""`testbed apply -f` and `testbed delete -f` on a cluster with an API server, as kubectl does
them: each object of the file written to the API server — created, or merged into the object
there by the upstream merge keys (nothing written when that changes nothing) — with
fieldValidation Strict; an object the API server refuses is reported in its words while the
others stay applied; then one pass of the controllers carries what changed into the cluster
before the command returns, and what the cluster itself could not take (a pod no node can
run) is reported too. So `testbed` and kubectl act on one truth, the API's.

A file the manifest reader refuses (file:line errors) is refused whole before anything is
written, as kubectl refuses a file it cannot decode."""
import copy

from testbed import manifests
from testbed.api.apply import Applying, refuse_deleting_system_namespaces
from testbed.apiserver.patch import PatchError, strategic_merge
from testbed.apiserver.resources import Resource, of_kind
from testbed.errors import TestbedError

from . import Controllers
from .client import ApiClient

QUERY = "fieldValidation=Strict&fieldManager=testbed"
# where the cluster keeps what it took of each kind: the state's dict, keyed as realise.key_of
HELD = {"Namespace": "namespaces", "Pod": "pods", "Deployment": "deployments",
        "Service": "services", "NetworkPolicy": "policies", "Ingress": "ingresses",
        "IngressClass": "ingress_classes", "Secret": "secrets"}


def shown(resource: Resource, name: str) -> str:
    """kubectl's name of an object: `deployment.apps/web`, `service/web`."""
    group = f".{resource.group}" if resource.group else ""
    return f"{resource.kind.lower()}{group}/{name}"


def _server_error(doc: dict, verb: str, source: str) -> str:
    """kubectl's line for a request the API server refused."""
    reason = doc.get("reason") or "BadRequest"
    return f'Error from server ({reason}): error when {verb} "{source}": ' \
           f'{doc.get("message", "")}'


def _comparable(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for server_set in ("resourceVersion", "managedFields", "generation"):
        meta.pop(server_set, None)
    out.pop("status", None)
    return out


def apply_one(client: ApiClient, doc: dict, source: str) -> str:
    """Write one object; its line (`service/web created`); TestbedError with kubectl's line
    for what the API server refuses."""
    resource = of_kind(doc.get("apiVersion", ""), doc.get("kind", ""))
    meta = doc.get("metadata") or {}
    namespace = (meta.get("namespace") or "default") if resource.namespaced else None
    name = meta["name"]
    current = client.get(resource.path(namespace, name))
    if current is None:
        code, body = client.request("POST", f"{resource.path(namespace)}?{QUERY}", doc)
        if code != 201:
            raise TestbedError(_server_error(body, "creating", source))
        return f"{shown(resource, name)} created"
    try:
        merged = strategic_merge(current, doc)
    except PatchError as e:
        raise TestbedError(f'error when patching "{source}": {e}') from None
    if _comparable(merged) == _comparable(current):
        return f"{shown(resource, name)} unchanged"
    code, body = client.request("PATCH", f"{resource.path(namespace, name)}?{QUERY}", doc,
                                "application/strategic-merge-patch+json")
    if code != 200:
        raise TestbedError(_server_error(body, "patching", source))
    return f"{shown(resource, name)} configured"


def delete_one(client: ApiClient, doc: dict, source: str, gone_namespaces: set) -> str:
    """Delete one object; an object of a namespace this command deleted before went with it
    (kube-apiserver would still be finalizing it, and kubectl says it is deleted)."""
    resource = of_kind(doc.get("apiVersion", ""), doc.get("kind", ""))
    meta = doc.get("metadata") or {}
    namespace = (meta.get("namespace") or "default") if resource.namespaced else None
    code, body = client.request("DELETE", resource.path(namespace, meta["name"]))
    if code == 404 and namespace in gone_namespaces:
        code = 200
    if code not in (200, 202):
        raise TestbedError(_server_error(body, "deleting", source))
    if resource.name == "namespaces":
        gone_namespaces.add(meta["name"])
    return f'{shown(resource, meta["name"])} deleted'


def not_taken(controllers: Controllers, cluster: Applying,
              docs: list[tuple[str, dict]]) -> list[str]:
    """Objects the API holds that the cluster did not take in the pass: the reason each
    controller was given."""
    out = []
    for _source, doc in docs:
        kind, meta = doc.get("kind", ""), doc.get("metadata") or {}
        resource = of_kind(doc.get("apiVersion", ""), kind)
        key = f"{meta.get('namespace') or 'default'}/{meta['name']}" if resource.namespaced \
            else meta["name"]
        if kind not in HELD or key in getattr(cluster.state, HELD[kind]):
            continue  # stored only (a ConfigMap), or taken
        why = controllers.refusals.messages.get((kind, key), "not taken by the cluster yet")
        out.append(f"{shown(resource, meta['name'])}: accepted by the API server, but the "
                   f"cluster cannot run it: {why}")
    return out


def apply(controllers: Controllers, cluster: Applying, path: str, op: str) -> dict:
    """The reply of the cluster's owner to `testbed apply|delete -f PATH`."""
    loaded = manifests.load(path)  # refused whole, with file:line, before anything is sent
    if op == "delete":
        refuse_deleting_system_namespaces(loaded)
    # kinds the API server does not serve were named in the reader's warnings, as before
    docs = [(source, doc) for source, doc in loaded.documents
            if of_kind(str(doc.get("apiVersion", "")), str(doc.get("kind", ""))) is not None]
    done, errors, written, gone = [], [], [], set()
    for source, doc in docs:
        try:
            done.append(apply_one(controllers.client, doc, source) if op == "apply" else
                        delete_one(controllers.client, doc, source, gone))
            written.append((source, doc))
        except TestbedError as e:
            errors.append(str(e))
    controllers.sync(cluster)  # the cluster follows before the command returns
    if op == "apply":
        errors += not_taken(controllers, cluster, written)
        return {"ok": not errors, "warnings": loaded.warnings, "created": done,
                "errors": errors}
    return {"ok": not errors, "warnings": loaded.warnings,
            "removed": [line.rsplit(" ", 1)[0] for line in done], "errors": errors}
