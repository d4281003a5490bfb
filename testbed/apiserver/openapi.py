"""OpenAPI v3, as far as kubectl reads it: the root (/openapi/v3) naming one document per
group version, and each document's paths with their operations, GroupVersionKind and query
parameters — kubectl looks for `fieldValidation` on a kind's PATCH to decide that the server
validates fields itself (and then sends fieldValidation=Strict). Schemas of the objects are
not served yet (`kubectl explain` needs them)."""
import hashlib
import json

from .resources import RESOURCES

PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _path_of(group_version: str) -> str:
    return "api/v1" if group_version == "v1" else f"apis/{group_version}"


def document(group_version: str) -> dict | None:
    """The OpenAPI v3 document of one group version, or None for one not served."""
    found = [r for r in RESOURCES if r.group_version == group_version]
    if not found:
        return None
    paths = {}
    for r in found:
        base = f"/{_path_of(group_version)}"
        item = f"{base}/namespaces/{{namespace}}/{r.name}/{{name}}" if r.namespaced \
            else f"{base}/{r.name}/{{name}}"
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        params = [{"name": p, "in": "query", "schema": {"type": "string"}} for p in PARAMETERS]
        ok = {"200": {"description": "OK"}}
        paths[item] = {
            "get": {"operationId": f"read{r.kind}", "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk, "responses": ok},
            "put": {"operationId": f"replace{r.kind}", "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "parameters": params,
                    "responses": ok},
            "patch": {"operationId": f"patch{r.kind}", "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk, "parameters": params,
                      "responses": ok},
            "delete": {"operationId": f"delete{r.kind}", "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": gvk, "responses": ok}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0"},
            "paths": paths, "components": {"schemas": {}}}


def _hash(doc) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()


def root() -> dict:
    """/openapi/v3: where each group version's document is, with its hash (clients cache by
    it)."""
    versions = sorted({r.group_version for r in RESOURCES})
    return {"paths": {_path_of(gv): {"serverRelativeURL": f"/openapi/v3/{_path_of(gv)}?hash="
                                                           f"{_hash(document(gv))}"}
                      for gv in versions}}


def by_path(path: str) -> dict | None:
    """The document served at /openapi/v3/<path> (api/v1, apis/apps/v1, ...)."""
    if path == "api/v1":
        return document("v1")
    if path.startswith("apis/"):
        return document(path[len("apis/"):])
    return None
