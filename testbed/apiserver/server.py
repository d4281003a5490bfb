"""The API server process: HTTPS with the cluster's CA, client certificates verified and
mapped to users as kube-apiserver maps them, anonymous requests refused (401), discovery, and
the resources on etcd (rest.py); service-account tokens (tokens.py) authenticate too. Every
error is a Status object; a request the server cannot serve never answers with a traceback.

    python -m testbed.apiserver.server CONFIG.json

CONFIG: {"etcd": "http://127.0.0.1:PORT", "pki": DIR, "host": "127.0.0.1", "port": PORT,
"inside": {"netns": PATH, "host": IP, "port": 6443} or null (a listener in a node's
namespace, which pods reach through default/kubernetes), "run_dir": the cluster's run
directory (its pods' sandboxes and output, for exec and logs)}.
"""
import asyncio
import json
import logging
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.auth import tokens
from testbed.auth.pki import Pki, user_of
from testbed.host import netns
from testbed.manifests.families import join_host_port

from . import discovery, openapi
from .etcd import Store
from .resources import find
from .rest import Rest
from .status import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit on a request body
SERVER_HEADER = "testbed-apiserver"


def tls_context(pki: Pki) -> ssl.SSLContext:
    """Serving certificate, and client certificates asked for and verified against the
    cluster's CA but not required: a request without one is answered 401, as kube-apiserver
    answers it with anonymous authentication off."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca_cert)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _user(request):
    """((user, groups), the token it came with): of a verified client certificate (no token),
    else of a service-account token (`Authorization: Bearer`); (None, None) for an anonymous
    request."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport else None
    found = user_of(cert)
    key = request.app["service_account_key"]
    bearer = request.headers.get("Authorization", "")
    if found is None and key is not None and bearer[:7].lower() == "bearer ":
        token = bearer[7:].strip()
        found = tokens.authenticate(key, token)
        return found, token if found else None
    return found, None


async def _still_bound(store: Store, token: str) -> bool:
    """A token is good while its service account (and the pod it is bound to) exist and are
    not being deleted, with the uids it names, as kube-apiserver checks."""
    for resource, namespace, name, uid in tokens.bound_objects(token):
        entry = await store.get(find("", "v1", resource).key(namespace, name))
        meta = entry.value.get("metadata", {}) if entry else {}
        if entry is None or meta.get("deletionTimestamp") or (uid and meta.get("uid") != uid):
            return False
    return True


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as a Status: ours, aiohttp's (413 for a body over 3 MiB, 404 for an
    unknown path) and any bug (500, logged, the server going on)."""
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except web.HTTPRequestEntityTooLarge:
        return ApiError(413, "Request entity too large: limit is 3145728").response()
    except web.HTTPException as e:
        if e.status == 404:
            return ApiError(404, "the server could not find the requested resource").response()
        if e.status == 405:
            return ApiError(405, "the server does not allow this method on the requested "
                            "resource").response()
        return ApiError(e.status, e.reason or "request failed").response()
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as e:  # a bug: a Status, never a traceback to the client
        logging.exception("internal error on %s %s", request.method, request.path)
        return ApiError(500, f"Internal error occurred: {type(e).__name__}: {e}").response()


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    user, token = _user(request)
    if user is None or (token and not await _still_bound(request.app["store"], token)):
        raise ApiError(401, "Unauthorized")
    request["user"] = user
    return await handler(request)


def make_app(store: Store, server_address: str, run_dir: str = "",
             service_account_key: ec.EllipticCurvePrivateKey | None = None,
             service_ranges: str = "10.96.0.0/12") -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[errors, authenticate])
    app["service_account_key"] = service_account_key
    app["store"] = store
    rest = Rest(store, run_dir, service_account_key, service_ranges)

    def doc(body):
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def version(_request):
        return doc(discovery.VERSION)

    async def health(_request):
        return web.Response(text="ok")

    async def api(request):
        # the address the client reached: kubectl's on the host, a pod's inside the emulation
        here = request.transport.get_extra_info("sockname") if request.transport else None
        return doc(discovery.api_versions(join_host_port(here[0], here[1]) if here
                                          else server_address))

    async def apis(_request):
        return doc(discovery.api_group_list())

    async def core(request):
        parts = [p for p in request.match_info["tail"].split("/") if p]
        if not parts:
            if request.method != "GET":
                raise ApiError(405, "the server does not allow this method on the requested "
                               "resource")
            return doc(discovery.resource_list("", "v1"))
        return await rest.dispatch(request, "", "v1", parts)

    async def named(request):
        group = request.match_info["group"]
        parts = [p for p in request.match_info["tail"].split("/") if p]
        if not parts:
            found = discovery.api_group(group)
        elif len(parts) == 1:
            found = discovery.resource_list(group, parts[0])
        else:
            return await rest.dispatch(request, group, parts[0], parts[1:])
        if found is None:
            raise ApiError(404, "the server could not find the requested resource")
        return doc(found)

    async def openapi_root(_request):
        return doc(await asyncio.get_running_loop().run_in_executor(None, openapi.root))

    async def openapi_document(request):
        path = request.match_info["path"].strip("/")
        group_version = openapi.group_version_of(path)
        found = group_version and await asyncio.get_running_loop().run_in_executor(
            None, openapi.serialized, group_version)  # built once, ~0.5 s: off the loop
        if not found:
            raise ApiError(404, "the server could not find the requested resource")
        body, digest = found
        asked = request.query.get("hash")
        if asked and asked != digest:  # an older document: kube-openapi redirects to this one
            raise web.HTTPMovedPermanently(f"/openapi/v3/{path}?hash={digest}")
        headers = {"Etag": f'"{digest}"', "Cache-Control": "public, immutable" if asked
                   else "no-cache, private"}
        return web.Response(body=body, content_type="application/json", headers=headers)

    app.router.add_get("/openapi/v3", openapi_root)
    app.router.add_get("/openapi/v3/{path:.+}", openapi_document)
    app.router.add_get("/version", version)
    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, health)
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_route("*", "/api/v1{tail:(/.*)?}", core)
    app.router.add_route("*", "/apis/{group}{tail:(/.*)?}", named)
    app["rest"] = rest
    return app


def listening_socket(inside: dict) -> socket.socket:
    """A listening socket at inside["host"]:inside["port"] in the namespace inside["netns"]
    (a node's), so that pods and nodes reach the server inside the emulation."""
    family = socket.AF_INET6 if ":" in inside["host"] else socket.AF_INET
    sock = netns.socket_in(inside["netns"], family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((inside["host"], int(inside["port"])))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def serve(config: dict) -> None:
    pki = Pki(config["pki"])
    host, port = config.get("host", "127.0.0.1"), int(config["port"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        store = Store(session, config["etcd"])
        app = make_app(store, f"{host}:{port}", config.get("run_dir", ""),
                       tokens.load_key(pki.service_account_key),
                       config.get("service_cluster_ip_range", "10.96.0.0/12"))
        await app["rest"].ensure_system_namespaces()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        context = tls_context(pki)
        await web.TCPSite(runner, host, port, ssl_context=context).start()
        inside = config.get("inside")
        if inside:  # kube-apiserver's address on its node, behind default/kubernetes
            await web.SockSite(runner, listening_socket(inside), ssl_context=context).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"serving https://{host}:{port}", flush=True)
        await stop.wait()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m testbed.apiserver.server CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        config = json.load(f)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
