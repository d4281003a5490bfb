"""The REST verbs on resources, as kube-apiserver serves them: get, list (label and field
selectors, limit and continue, Tables), watch, create, update, patch, delete and
deletecollection, each on etcd (etcd.py) and answering errors with Status objects."""
import asyncio
import base64
import json
import os
import random
from typing import Any

import yaml
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.api.objects import timestamp
from testbed.auth import tokens

from . import (
    allocation,
    fields,
    objects,
    ownership,
    patch,
    portforward,
    protobuf,
    selectors,
    streams,
)
from .etcd import Compacted, Conflict, Entry, Store
from .resources import RESOURCES, Resource, find
from .status import ApiError, already_exists, conflict, not_found
from .tables import table

MAX_LIMIT = 500  # a page larger than this is cut to it (kube-apiserver: any size, in pages)
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = ("application/merge-patch+json", "application/json-patch+json",
               "application/strategic-merge-patch+json", APPLY_PATCH)
BODY_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def parse_body(text: str, content_type: str) -> Any:
    """The request body as a document; 400 for what is not JSON (or YAML where sent as YAML)."""
    if not text.strip():
        raise ApiError(400, "the body of the request was empty")
    try:
        if "yaml" in content_type:
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ApiError(400, f"couldn't get version/kind; json parse error: {e}") from None


def _api_version(resource):
    return resource.group_version


def present(resource: Resource, entry: Entry) -> dict:
    """A stored object as the API returns it: kind, apiVersion and its resourceVersion."""
    obj = dict(entry.value)
    obj["apiVersion"], obj["kind"] = _api_version(resource), resource.kind
    obj["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(entry.mod_revision)}
    return {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), **obj}


def _continue_token(revision, key):
    raw = json.dumps({"rv": revision, "start": key}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_continue(token):
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(doc["rv"]), str(doc["start"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "continue key is not valid: incorrect encoded start "
                       "resourceVersion (version meta.k8s.io/v1)") from None


def manager_of(request: web.Request) -> str:
    """Who an Update is recorded as: the fieldManager asked for, else the client's name (its
    User-Agent up to the first "/"), as kube-apiserver defaults it."""
    asked = request.query.get("fieldManager")
    if asked:
        return asked
    agent = request.headers.get("User-Agent", "").split("/", 1)[0].strip()
    return agent[:128] or "unknown"


def _message_of(resource: Resource) -> str | None:
    """The k8s.io/api message of a resource's kind (None for one without a schema here)."""
    return protobuf.schema()["kinds"].get(f"{resource.group_version}/{resource.kind}")


def warned(response: web.Response, warnings: list[str]) -> web.Response:
    for warning in warnings:
        response.headers.add("Warning", warning)
    return response


class Rest:
    """The resource verbs over one etcd store."""

    def __init__(self, store: Store, run_dir: str = "",
                 service_account_key: ec.EllipticCurvePrivateKey | None = None,
                 service_ranges: str = str(allocation.SERVICE_CIDR)):
        self.service_account_key = service_account_key
        # --service-cluster-ip-range: {family: range}, the primary first
        self.service_ranges = allocation.service_ranges(service_ranges)
        self.store = store
        self.run_dir = run_dir  # the cluster's: its pods' sandboxes and output
        # the containers' output: <namespace>/<pod>/<container>.log
        self.pods_dir = os.path.join(run_dir, "pods") if run_dir else ""
        self.rng = random.Random()

    # --- routing -------------------------------------------------------------------------
    async def dispatch(self, request: web.Request, group: str, version: str,
                       parts: list[str]) -> web.StreamResponse:
        """/api/v1/<parts> or /apis/<group>/<version>/<parts>."""
        namespace = None
        if len(parts) >= 3 and parts[0] == "namespaces" and find(group, version, parts[2]) \
                and find(group, version, parts[2]).namespaced:
            namespace, parts = parts[1], parts[2:]
        resource = find(group, version, parts[0]) if parts else None
        if resource is None or len(parts) > 3:
            raise ApiError(404, "the server could not find the requested resource")
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else ""
        if sub and sub not in resource.subresources:
            raise ApiError(404, "the server could not find the requested resource")
        if resource.namespaced and name is not None and namespace is None:
            raise ApiError(404, "the server could not find the requested resource")
        method = request.method
        if name is None:
            if method == "GET":
                if request.query.get("watch") in ("1", "true"):
                    return await self.watch(request, resource, namespace)
                return await self.list(request, resource, namespace)
            if method == "POST":
                return await self.create(request, resource, namespace)
            if method == "DELETE":
                return await self.delete_collection(request, resource, namespace)
        else:
            if sub in ("", "status"):
                if method == "GET":
                    found = present(resource, await self._get(resource, namespace, name))
                    if wants_table(request) and not sub:  # kubectl get KIND NAME
                        return self._json(table(resource.name, [found], {
                            "resourceVersion": found["metadata"]["resourceVersion"]}))
                    return self._json(found)
                if method == "PUT":
                    return await self.update(request, resource, namespace, name, sub)
                if method == "PATCH":
                    return await self.patch(request, resource, namespace, name, sub)
                if method == "DELETE" and not sub:
                    return await self.delete(request, resource, namespace, name)
            elif sub == "exec" and method in ("GET", "POST") and resource.name == "pods":
                pod = (await self._get(resource, namespace, name)).value
                return await streams.exec_pod(request, self.run_dir, namespace, name, pod)
            elif sub == "portforward" and method in ("GET", "POST") and \
                    resource.name == "pods":
                await self._get(resource, namespace, name)  # 404 for a pod that is not there
                return await portforward.portforward_pod(request, self.run_dir, namespace, name)
            elif sub == "attach" and method in ("GET", "POST") and resource.name == "pods":
                path = await self._container_output(request, resource, namespace, name)
                return await streams.attach_pod(request, path)
            elif sub == "log" and method == "GET" and resource.name == "pods":
                return await self.log(request, resource, namespace, name)
            elif sub == "scale" and method in ("GET", "PUT", "PATCH"):
                return await self.scale(request, resource, namespace, name)
            elif sub == "token" and method == "POST" and resource.name == "serviceaccounts":
                return await self.token_request(request, resource, namespace, name)
            elif sub == "binding" and method == "POST":
                return await self.bind(request, resource, namespace, name)
            else:
                raise ApiError(404, f"the server does not serve {resource.name}/{sub} yet")
        raise ApiError(405, "the server does not allow this method on the requested "
                       "resource", "MethodNotAllowed")

    @staticmethod
    def _json(doc, status=200):
        return web.Response(status=status, text=json.dumps(doc),
                            content_type="application/json")

    # --- reading -------------------------------------------------------------------------
    async def _get(self, resource, namespace, name) -> Entry:
        entry = await self.store.get(resource.key(namespace, name))
        if entry is None:
            raise not_found(resource.name, name, resource.group)
        return entry

    def _selectors(self, request, resource):
        try:
            labels = selectors.parse_labels(request.query.get("labelSelector", ""))
            fields = selectors.parse_fields(request.query.get("fieldSelector", ""),
                                            resource.name)
        except selectors.SelectorError as e:
            raise ApiError(400, str(e)) from None
        return lambda obj: labels(obj.get("metadata", {}).get("labels")) and fields(obj)

    async def list(self, request: web.Request, resource: Resource,
                   namespace: str | None) -> web.StreamResponse:
        chosen = self._selectors(request, resource)
        try:
            limit = int(request.query.get("limit") or 0)
        except ValueError:
            raise ApiError(400, f"limit: invalid value {request.query['limit']!r}") from None
        if limit < 0:
            raise ApiError(400, f"limit: must be 0 or more, not {limit}")
        limit = min(limit, MAX_LIMIT) if limit else 0
        prefix = resource.prefix(namespace)
        start, revision = None, 0
        if request.query.get("continue"):
            revision, start = _read_continue(request.query["continue"])
        items, more, next_key = [], False, None
        while True:  # pages of etcd until `limit` objects pass the selectors
            entries, revision, more = await self.store.list(
                prefix, (limit - len(items)) if limit else 0, start, revision)
            for entry in entries:
                obj = present(resource, entry)
                if chosen(obj):
                    items.append(obj)
            if entries:
                next_key = entries[-1].key + "\x00"
            if not more or not limit or len(items) >= limit:
                break
            start = next_key
        meta = {"resourceVersion": str(revision)}
        if more and limit:
            meta["continue"] = _continue_token(revision, next_key)
        if wants_table(request):
            return self._json(table(resource.name, items, meta))
        for item in items:
            item.pop("apiVersion"), item.pop("kind")
        return self._json({"kind": f"{resource.kind}List", "apiVersion":
                           _api_version(resource), "metadata": meta, "items": items})

    async def watch(self, request: web.Request, resource: Resource,
                    namespace: str | None) -> web.StreamResponse:
        chosen = self._selectors(request, resource)
        as_table = wants_table(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        timeout = request.query.get("timeoutSeconds")

        async def send(kind, obj):
            if as_table:
                obj = table(resource.name, [obj])
            await response.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())

        async def stream():
            since = request.query.get("resourceVersion", "")
            initial = request.query.get("sendInitialEvents") == "true"
            if since in ("", "0") or initial:
                entries, revision, _ = await self.store.list(resource.prefix(namespace))
                for entry in entries:
                    obj = present(resource, entry)
                    if chosen(obj):
                        await send("ADDED", obj)
                if initial:  # a streaming list (WatchList): its end marked by a bookmark
                    await response.write((json.dumps({"type": "BOOKMARK", "object": {
                        "kind": resource.kind, "apiVersion": resource.group_version,
                        "metadata": {"resourceVersion": str(revision), "annotations": {
                            "k8s.io/initial-events-end": "true"}}}}) + "\n").encode())
                start = revision + 1
            else:
                try:
                    start = int(since) + 1
                except ValueError:
                    raise ApiError(400, f"resourceVersion: invalid value {since!r}") from None
            try:
                async for kind, entry, prev in self.store.watch(resource.prefix(namespace),
                                                                start):
                    obj = present(resource, entry)
                    before = present(resource, prev) if prev else None
                    if kind == "DELETE":
                        if chosen(obj):
                            await send("DELETED", obj)
                        continue
                    now_in = chosen(obj)
                    was_in = before is not None and chosen(before)
                    if now_in:
                        await send("MODIFIED" if was_in else "ADDED", obj)
                    elif was_in:  # changed out of the selection: gone from the watcher's view
                        await send("DELETED", obj)
            except Compacted:
                await send("ERROR", ApiError(410, "too old resource version",
                                             "Expired").body())
        try:
            if timeout:
                await asyncio.wait_for(stream(), float(timeout))
            else:
                await stream()
        except asyncio.TimeoutError:
            pass
        except ApiError as e:
            await send("ERROR", e.body())
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

    # --- writing -------------------------------------------------------------------------
    async def _namespace_must_exist(self, namespace):
        if await self.store.get(f"/registry/namespaces/{namespace}") is None:
            raise not_found("namespaces", namespace)

    async def _body(self, request):
        kind = request.content_type or ""
        if kind == protobuf.CONTENT_TYPE:  # what client-go's typed clients send
            return protobuf.decode(await request.read())
        if kind not in BODY_TYPES and kind not in PATCH_TYPES:
            raise ApiError(415, "the body of the request was in an unknown format - accepted "
                           f"media types include: {', '.join(BODY_TYPES)}",
                           "UnsupportedMediaType")
        text = await request.text()
        return parse_body(text, kind)

    def _check_kind(self, resource, obj):
        if not isinstance(obj, dict):
            raise ApiError(400, "the object provided is unrecognized (must be of type "
                           f"{resource.kind})")
        kind, version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != resource.kind:
            raise ApiError(400, f"the object provided is unrecognized (must be of type "
                           f"{resource.kind}): couldn't get version/kind; json parse error: "
                           f"{kind} is not {resource.kind}")
        if version and version != resource.group_version:
            raise ApiError(400, f"the API version in the data ({version}) does not match the "
                           f"expected API version ({resource.group_version})")

    @staticmethod
    def _fields(request, resource, obj) -> "list[str]":
        """Field validation as the request asks (kubectl: Strict; else Warn): the Warning
        headers to send, or 400 for unknown fields under Strict."""
        if request.content_type == protobuf.CONTENT_TYPE:
            return []  # decoded by the kind's own schema: no field it does not have
        return fields.check(obj, resource.group_version, resource.kind,
                            request.query.get("fieldValidation") or "Warn")

    def _check_namespace(self, resource, obj, namespace):
        given = (obj.get("metadata") or {}).get("namespace") if isinstance(
            obj.get("metadata"), dict) else None
        if resource.namespaced and given and given != namespace:
            raise ApiError(400, "the namespace of the provided object does not match the "
                           "namespace sent on the request")

    async def create(self, request: web.Request, resource: Resource,
                     namespace: str | None) -> web.StreamResponse:
        obj = await self._body(request)
        self._check_kind(resource, obj)
        warnings = self._fields(request, resource, obj)
        self._check_namespace(resource, obj, namespace)
        return warned(await self._create(request, resource, namespace, obj), warnings)

    async def _create(self, request, resource, namespace, obj, managed: "list | None" = None):
        """Create `obj`; its managedFields `managed` (an apply's), else the requester's
        Update of every field it sets."""
        if resource.namespaced:
            await self._namespace_must_exist(namespace)
        obj = objects.prepare_create(resource, obj, namespace)
        message = _message_of(resource)
        if managed is not None:
            obj["metadata"]["managedFields"] = managed
        elif message:
            obj["metadata"]["managedFields"] = ownership.after_update(
                [], manager_of(request), resource.group_version, {}, obj, message)
        name = obj["metadata"]["name"]
        if resource.name == "services":
            await self._allocate(name, obj.setdefault("spec", {}))
        if request.query.get("dryRun") == "All":
            return self._json({**obj}, 201)
        key = resource.key(namespace, name)
        try:
            revision = await self.store.create(key, obj)
        except Conflict:
            raise already_exists(resource.name, name, resource.group) from None
        if resource.name == "namespaces":
            await self._default_account(name)
        return self._json(present(resource, Entry(key, obj, revision, revision)), 201)

    async def _default_account(self, namespace):
        """The ServiceAccount `default` every namespace has (kube-controller-manager's
        serviceaccounts controller makes it; here the API server does, with the namespace)."""
        resource = find("", "v1", "serviceaccounts")
        obj = objects.prepare_create(resource, {"metadata": {"name": "default"}}, namespace)
        try:
            await self.store.create(resource.key(namespace, "default"), obj)
        except Conflict:
            pass

    async def token_request(self, request: web.Request, resource: Resource,
                            namespace: str | None, name: str) -> web.StreamResponse:
        """serviceaccounts/token (`kubectl create token`): a token of the account, signed
        with the cluster's service-account key, as kube-apiserver's TokenRequest issues it."""
        account = (await self._get(resource, namespace, name)).value
        if self.service_account_key is None:
            raise ApiError(404, "the server could not find the requested resource")
        body = await self._body(request)
        spec = (body.get("spec") if isinstance(body, dict) else None) or {}
        seconds = spec.get("expirationSeconds") or tokens.EXPIRY_S
        if not isinstance(seconds, int) or seconds < tokens.MIN_EXPIRY_S:
            raise ApiError(422, f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
                           f"spec.expirationSeconds: Invalid value: {seconds}: may not "
                           "specify a duration less than 10 minutes", "Invalid")
        if seconds > 2 ** 32:
            raise ApiError(422, f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
                           f"spec.expirationSeconds: Invalid value: {seconds}: may not "
                           "specify a duration larger than 2^32 seconds", "Invalid")
        audiences = spec.get("audiences") or list(tokens.AUDIENCES)
        ref = spec.get("boundObjectRef") or {}
        bound = {ref["kind"].lower(): {"name": ref.get("name", ""), "uid": ref.get("uid", "")}
                 } if ref.get("kind") in ("Pod", "Secret", "Node") else {}
        token, expires = tokens.issue(self.service_account_key, namespace, name,
                                      account["metadata"].get("uid", ""), seconds, audiences,
                                      bound)
        return self._json({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                           "metadata": {"name": name, "namespace": namespace,
                                        "creationTimestamp": objects.now_stamp()},
                           "spec": {**spec, "audiences": audiences,
                                    "expirationSeconds": seconds},
                           "status": {"token": token,
                                      "expirationTimestamp": timestamp(expires)}}, 201)

    async def _allocate(self, name, spec):
        """A new Service's ClusterIP and node ports, as kube-apiserver's allocators give them."""
        entries, _, _ = await self.store.list("/registry/services/specs/")
        ips, ports = allocation.in_use([e.value for e in entries])
        allocation.allocate_cluster_ip(name, spec, ips, self.rng, self.service_ranges)
        allocation.allocate_node_ports(name, spec, ports, self.rng)

    async def _write(self, resource, namespace, name, entry, new, sub, manager: str = ""):
        """Write `new` over `entry`; with a manager, its Update recorded in managedFields
        (server-side apply writes its own)."""
        out = objects.prepare_update(resource, entry.value, new, sub)
        message = _message_of(resource)
        if manager and message:
            out["metadata"]["managedFields"] = ownership.after_update(
                entry.value["metadata"].get("managedFields") or [], manager,
                resource.group_version, entry.value, out, message, sub)
        try:
            revision = await self.store.update(entry.key, out, entry.mod_revision)
        except Conflict:
            raise conflict(resource.name, name, resource.group) from None
        return self._json(present(resource, Entry(entry.key, out, revision,
                                                  entry.create_revision)))

    async def update(self, request: web.Request, resource: Resource,
                     namespace: str | None, name: str, sub: str | None) -> web.StreamResponse:
        new = await self._body(request)
        self._check_kind(resource, new)
        warnings = self._fields(request, resource, new)
        self._check_namespace(resource, new, namespace)
        meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, "the name of the object "
                           f"({meta['name']}) does not match the name on the URL ({name})")
        entry = await self.store.get(resource.key(namespace, name))
        if entry is None:
            raise not_found(resource.name, name, resource.group)
        wanted = meta.get("resourceVersion")
        if wanted and str(wanted) != str(entry.mod_revision):
            raise conflict(resource.name, name, resource.group)
        return warned(await self._write(resource, namespace, name, entry, new, sub,
                                        manager_of(request)), warnings)

    async def patch(self, request: web.Request, resource: Resource,
                    namespace: str | None, name: str, sub: str | None) -> web.StreamResponse:
        kind = request.content_type
        if kind not in PATCH_TYPES:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted "
                           f"media types include: {', '.join(PATCH_TYPES)}")
        body = await self._body(request)
        if kind == APPLY_PATCH:
            return await self.server_side_apply(request, resource, namespace, name, body, sub)
        for attempt in range(5):  # a patch is applied to the latest version, retried on races
            entry = await self.store.get(resource.key(namespace, name))
            if entry is None:
                raise not_found(resource.name, name, resource.group)
            current = present(resource, entry)
            try:
                if kind == "application/json-patch+json":
                    new = patch.json_patch(current, body)
                elif kind == "application/merge-patch+json":
                    new = patch.merge_patch(current, body)
                else:
                    if not isinstance(body, dict):
                        raise patch.PatchError("a strategic merge patch is an object")
                    new = patch.strategic_merge(current, body)
            except patch.PatchError as e:
                raise ApiError(422 if kind == "application/json-patch+json" else 400,
                               str(e)) from None
            if not isinstance(new, dict):
                raise ApiError(400, "the patch does not give an object")
            self._check_kind(resource, new)
            warnings = self._fields(request, resource, new)
            meta = new.get("metadata") or {}
            wanted = meta.get("resourceVersion")
            if wanted and str(wanted) != str(entry.mod_revision):
                raise conflict(resource.name, name, resource.group)
            if meta.get("name") != name or (resource.namespaced and
                                           meta.get("namespace") != namespace):
                raise ApiError(400, "metadata.name and metadata.namespace cannot be changed "
                               "by a patch")
            try:
                return warned(await self._write(resource, namespace, name, entry, new, sub,
                                                manager_of(request)), warnings)
            except ApiError as e:
                if e.code != 409 or wanted or attempt == 4:
                    raise

    async def server_side_apply(self, request: web.Request, resource: Resource,
                                namespace: str | None, name: str, body: dict,
                                sub: str | None) -> web.StreamResponse:
        """An apply patch (`kubectl apply --server-side`): the object created from the
        applied configuration, or that configuration merged into it by the upstream merge
        keys; the field manager's Apply entry in managedFields names the fields it set."""
        manager = request.query.get("fieldManager")
        if not manager:
            raise ApiError(422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                           "Required value: is required for apply patch", "Invalid")
        if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
            raise ApiError(400, "invalid object type: /, Kind=")
        self._check_kind(resource, body)
        warnings = self._fields(request, resource, body)
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name", name) != name:
            raise ApiError(400, "the name of the object (%s) does not match the name on the "
                           "URL (%s)" % (meta.get("name"), name))
        self._check_namespace(resource, body, namespace)
        applied = {**body, "metadata": {**meta, "name": name}}
        message = _message_of(resource)
        force = request.query.get("force") == "true"
        for attempt in range(5):
            entry = await self.store.get(resource.key(namespace, name))
            if entry is None:
                if sub:
                    raise not_found(resource.name, name, resource.group)
                managed = ownership.after_apply([], manager, resource.group_version, {},
                                                applied, applied, message, force) \
                    if message else []
                try:
                    return warned(await self._create(request, resource, namespace, applied,
                                                     managed), warnings)
                except ApiError as e:
                    if e.code != 409 or attempt == 4:
                        raise
                    continue
            current = present(resource, entry)
            try:
                new = patch.strategic_merge(current, applied)
            except patch.PatchError as e:
                raise ApiError(400, str(e)) from None
            if message:
                new["metadata"]["managedFields"] = ownership.after_apply(
                    current["metadata"].get("managedFields") or [], manager,
                    resource.group_version, current, applied, new, message, force)
            try:
                return warned(await self._write(resource, namespace, name, entry, new, sub),
                              warnings)
            except ApiError as e:
                if e.code != 409 or attempt == 4:
                    raise

    async def _container_output(self, request, resource, namespace, name) -> str:
        """The file holding a container's output (the `container` asked for, or the pod's
        only one), as the kubelet finds it; 400 in its words otherwise."""
        pod = (await self._get(resource, namespace, name)).value
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.query.get("container") or (names[0] if len(names) == 1 else "")
        if not container:
            raise ApiError(400, f"a container name must be specified for pod {name}, choose "
                           f"one of: [{' '.join(names)}]")
        if container not in names:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        if request.query.get("previous") in ("true", "1"):
            raise ApiError(400, f'previous terminated container "{container}" in pod "{name}" '
                           "not found")
        path = os.path.join(self.pods_dir, namespace, name, f"{container}.log") \
            if self.pods_dir else ""
        if not path or not os.path.exists(path):
            raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: '
                           "ContainerCreating")
        return path

    async def log(self, request: web.Request, resource: Resource,
                  namespace: str | None, name: str) -> web.StreamResponse:
        """pods/log as the kubelet serves it through the API server: a container's output
        (its file in the run directory), `tailLines`, `limitBytes`, and `follow` streaming
        what is appended until the client goes or the pod does."""
        path = await self._container_output(request, resource, namespace, name)
        with open(path, "rb") as f:
            data = f.read()
        tail = request.query.get("tailLines")
        if tail and tail.lstrip("-").isdigit():
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(tail):]) if int(tail) > 0 else b""
        limit = request.query.get("limitBytes")
        if limit and limit.isdigit():
            data = data[:int(limit)]
        if request.query.get("follow") not in ("true", "1"):
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(data)
        try:
            async for more in streams.appended(path, os.path.getsize(path)):
                if more:
                    await response.write(more)
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

    @staticmethod
    def _scale_of(resource, entry) -> dict:
        """The autoscaling/v1 Scale of a Deployment or ReplicaSet."""
        obj = present(resource, entry)
        meta = obj["metadata"]
        labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                 "creationTimestamp") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}}

    async def scale(self, request: web.Request, resource: Resource,
                    namespace: str | None, name: str) -> web.StreamResponse:
        """The scale subresource: read, replaced or patched as a Scale; what changes is the
        object's spec.replicas."""
        entry = await self._get(resource, namespace, name)
        current = self._scale_of(resource, entry)
        if request.method == "GET":
            return self._json(current)
        body = await self._body(request)
        try:
            if request.method == "PUT":
                wanted = body
            elif request.content_type == "application/json-patch+json":
                wanted = patch.json_patch(current, body)
            else:
                wanted = patch.merge_patch(current, body)
        except patch.PatchError as e:
            raise ApiError(400, str(e)) from None
        replicas = ((wanted or {}).get("spec") or {}).get("replicas") \
            if isinstance(wanted, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, f'Scale.autoscaling "{name}" is invalid: spec.replicas: '
                           f"Invalid value: {replicas}: must be greater than or equal to 0",
                           details={"name": name, "kind": "Scale", "causes": [
                               {"reason": "FieldValueInvalid", "field": "spec.replicas",
                                "message": "must be greater than or equal to 0"}]})
        asked = ((wanted.get("metadata") or {}).get("resourceVersion"))
        if asked and str(asked) != str(entry.mod_revision):
            raise conflict(resource.name, name, resource.group)
        new = {**entry.value, "spec": {**entry.value.get("spec", {}), "replicas": replicas}}
        response = await self._write(resource, namespace, name, entry, new, "",
                                     manager_of(request))
        stored = json.loads(response.text)
        return self._json({**current, "metadata": {**current["metadata"], "resourceVersion":
                                                    stored["metadata"]["resourceVersion"]},
                           "spec": {"replicas": replicas}})

    async def bind(self, request: web.Request, resource: Resource,
                   namespace: str | None, name: str) -> web.StreamResponse:
        """pods/binding, as the scheduler binds a pod: spec.nodeName set once."""
        binding = await self._body(request)
        target = binding.get("target") if isinstance(binding, dict) else None
        node = target.get("name") if isinstance(target, dict) else None
        if not node or not isinstance(node, str):
            raise ApiError(422, f'Binding.core "{name}" is invalid: target.name: Required '
                           "value", details={"name": name, "kind": "Binding", "causes": [
                               {"reason": "FieldValueRequired", "field": "target.name",
                                "message": "Required value"}]})
        entry = await self._get(resource, namespace, name)
        pod = entry.value
        bound = pod.get("spec", {}).get("nodeName")
        if bound:
            raise ApiError(409, f"pod {name} is already assigned to node \"{bound}\"",
                           "Conflict")
        pod = {**pod, "spec": {**pod.get("spec", {}), "nodeName": node}}
        try:
            await self.store.update(entry.key, pod, entry.mod_revision)
        except Conflict:
            raise conflict(resource.name, name, resource.group) from None
        return self._json({"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Success", "code": 201}, 201)

    async def _delete_entry(self, resource, entry):
        try:
            revision = await self.store.delete(entry.key, entry.mod_revision)
        except Conflict:
            name = entry.value.get("metadata", {}).get("name", "")
            raise conflict(resource.name, name, resource.group) from None
        return revision

    async def delete(self, request: web.Request, resource: Resource,
                     namespace: str | None, name: str) -> web.StreamResponse:
        entry = await self._get(resource, namespace, name)
        if request.query.get("dryRun") == "All":
            return self._json(present(resource, entry))
        revision = await self._delete_entry(resource, entry)
        if resource.name == "namespaces":
            await self._empty_namespace(name)
        shown = present(resource, entry)
        shown["metadata"]["resourceVersion"] = str(revision)
        return self._json(shown)

    async def _empty_namespace(self, namespace):
        """What the namespace controller does once a namespace is deleted: every object in it
        goes."""
        for other in RESOURCES:
            if not other.namespaced:
                continue
            entries, _, _ = await self.store.list(other.prefix(namespace))
            for entry in entries:
                try:
                    await self.store.delete(entry.key, entry.mod_revision)
                except Conflict:
                    pass

    async def delete_collection(self, request: web.Request, resource: Resource,
                                namespace: str | None) -> web.StreamResponse:
        chosen = self._selectors(request, resource)
        entries, _, _ = await self.store.list(resource.prefix(namespace))
        deleted = []
        for entry in entries:
            obj = present(resource, entry)
            if chosen(obj):
                await self._delete_entry(resource, entry)
                deleted.append(obj)
        return self._json({"kind": f"{resource.kind}List", "apiVersion": _api_version(resource),
                           "metadata": {}, "items": deleted})

    async def ensure_system_namespaces(self) -> None:
        """The namespaces kube-apiserver's system namespaces controller keeps."""
        resource = find("", "v1", "namespaces")
        for name in SYSTEM_NAMESPACES:
            obj = objects.prepare_create(resource, {"metadata": {"name": name}}, None)
            try:
                await self.store.create(resource.key(None, name), obj)
            except Conflict:
                pass
            await self._default_account(name)
