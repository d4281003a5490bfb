"""OpenAPI v3, as far as kubectl reads it: the root (/openapi/v3) naming one document per
group version, and each document's paths with their operations, GroupVersionKind and query
parameters — kubectl looks for `fieldValidation` on a kind's PATCH to decide that the server
validates fields itself (and then sends fieldValidation=Strict) — and the schemas of the
objects (schemas.py), which `kubectl explain` prints and kubectl's apply patches by.

Each document is built when first asked for (about a second for all of them: `kubectl
apply` asks, `kubectl run` and `get` do not) and served as kube-apiserver serves it: its
root names it with the hash of its content, and a request carrying that hash may be cached
for good."""
import functools
import hashlib
import json

from . import schemas
from .resources import RESOURCES

PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
# the patch types a PATCH takes: kubectl apply computes a strategic merge patch from the
# schemas only where the kind's PATCH names that type
PATCH_BODY = {"required": True, "content": {
    media: {"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}
    for media in ("application/apply-patch+yaml", "application/json-patch+json",
                  "application/merge-patch+json", "application/strategic-merge-patch+json")}}


def _path_of(group_version: str) -> str:
    return "api/v1" if group_version == "v1" else f"apis/{group_version}"


@functools.lru_cache(maxsize=None)
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
                      "requestBody": PATCH_BODY, "responses": ok},
            "delete": {"operationId": f"delete{r.kind}", "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": gvk, "responses": ok}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0"},
            "paths": paths,
            "components": {"schemas": {
                **schemas.for_group_version(group_version),
                "io.k8s.apimachinery.pkg.apis.meta.v1.Patch": {
                    "type": "object", "description": "The body of a PATCH, in one of the "
                                                     "patch types its Content-Type names."}}}}


@functools.lru_cache(maxsize=None)
def serialized(group_version: str) -> tuple[bytes, str] | None:
    """A document's JSON and the hash its URL carries."""
    found = document(group_version)
    if found is None:
        return None
    body = json.dumps(found, sort_keys=True).encode()
    return body, hashlib.sha512(body).hexdigest()[:128].upper()


def root() -> dict:
    """/openapi/v3: where each group version's document is, with its hash (clients cache by
    it)."""
    versions = sorted({r.group_version for r in RESOURCES})
    return {"paths": {_path_of(gv): {"serverRelativeURL": f"/openapi/v3/{_path_of(gv)}?hash="
                                                           f"{serialized(gv)[1]}"}
                      for gv in versions}}


def group_version_of(path: str) -> str | None:
    """The group version whose document is served at /openapi/v3/<path> (api/v1 -> v1,
    apis/apps/v1 -> apps/v1)."""
    if path == "api/v1":
        return "v1"
    if path.startswith("apis/"):
        return path[len("apis/"):]
    return None
