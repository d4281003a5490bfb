"""nginx's configuration for the cluster's Ingresses, as ingress-nginx renders it (pure).

One `server` per host (rules of several Ingresses for one host merge into it), and the
catch-all server `_` for rules without a host and the default backend. Paths become locations
as ingress-nginx makes them: `Exact /foo` is `location = /foo`; `Prefix /foo` matches /foo and
what lies under it element-wise, so it is `location = /foo` plus `location /foo/`;
`ImplementationSpecific` is nginx's own prefix `location /foo`. nginx then prefers an exact
match, then the longest prefix. When two Ingresses claim the same host and path, the one
created first wins (ingress-nginx's rule) and the other is named in a warning.

Traffic goes from nginx to the Service's endpoints directly, one `upstream` per Service port
(<ns>-<svc>-<port>, round-robin), as ingress-nginx does by default (it bypasses kube-proxy;
its annotation service-upstream would send it to the ClusterIP instead). A backend whose
Service or port does not exist, or that has no endpoints, answers 503; a request nothing
matches gets the default backend: an Ingress's `defaultBackend`, else 404 "default backend -
404". A host with TLS listens on 443 with its Secret's certificate (SNI picks it) and
redirects plain HTTP there with 308, as ingress-nginx's ssl-redirect does; every other host
answers 443 with the controller's fake certificate.
"""
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_404 = 'return 404 "default backend - 404\\n";'
NO_ENDPOINTS = 'return 503 "503 Service Temporarily Unavailable\\n";'


@dataclass
class Backend:
    """A Service port an Ingress names, resolved: its upstream name and endpoints, or why it
    cannot be reached."""
    upstream: str = ""
    endpoints: list = field(default_factory=list)  # ["ip:port", ...]
    problem: str = ""


@dataclass
class Server:
    host: str
    certificate: tuple | None = None  # (cert path, key path); None: the fake one
    locations: dict = field(default_factory=dict)  # (modifier, path) -> (Backend, owner)
    default: tuple | None = None  # (Backend, owner) for what no location matches


@dataclass
class Plan:
    servers: dict = field(default_factory=dict)  # host ("_": the catch-all) -> Server
    warnings: list = field(default_factory=list)


def locations_for(path: str, path_type: str) -> list[tuple[str, str]]:
    """nginx locations ((modifier, path)) for one Ingress path."""
    if path_type == "Exact":
        return [("=", path)]
    if path_type == "Prefix":
        trimmed = path.rstrip("/")
        return [("", "/")] if not trimmed else [("=", trimmed), ("", trimmed + "/")]
    return [("", path)]


def plan(ingresses: list, resolve: Callable[[str, dict], object],
         certificate: Callable[[str, str], tuple]) -> Plan:
    """ingresses: [(key "ns/name", spec, created)]; resolve(namespace, backend spec) ->
    Backend; certificate(namespace, secret name) -> ((cert, key) paths, problem)."""
    out = Plan()
    out.servers["_"] = Server("_")
    for key, spec, _created in sorted(ingresses, key=lambda i: (i[2], i[0])):
        namespace = key.split("/", 1)[0]
        tls_hosts = {}
        for tls in spec.get("tls", []):
            pair, problem = certificate(namespace, tls.get("secretName", ""))
            if problem:
                out.warnings.append(f"Ingress {key}: {problem}: its hosts get the controller's "
                                    "fake certificate, as ingress-nginx serves them")
            for host in tls.get("hosts", []):
                tls_hosts.setdefault(host, pair if not problem else None)
        default = None
        if "defaultBackend" in spec:
            default = (resolve(namespace, spec["defaultBackend"]), key)
            if out.servers["_"].default is None:
                out.servers["_"].default = default
        for rule in spec.get("rules", []):
            host = rule.get("host", "_")
            server = out.servers.setdefault(host, Server(host))
            if host in tls_hosts and server.certificate is None:
                server.certificate = tls_hosts[host] or ("fake", "fake")
            if default is not None and server.default is None and host != "_":
                server.default = default
            for path in rule.get("http", {}).get("paths", []):
                backend = resolve(namespace, path["backend"])
                if backend.problem:
                    out.warnings.append(f"Ingress {key}: {host if host != '_' else '*'}"
                                        f"{path['path']}: {backend.problem} (it answers 503)")
                for location in locations_for(path["path"], path["pathType"]):
                    held = server.locations.get(location)
                    if held is not None and held[1] != key:
                        out.warnings.append(
                            f"Ingress {key}: {host if host != '_' else '*'} "
                            f"{path['path']} ({path['pathType']}) is already Ingress "
                            f"{held[1]}'s, which was created first and wins")
                        continue
                    server.locations.setdefault(location, (backend, key))
    return out


def render(p: Plan, directory: str, fake: tuple) -> str:
    """nginx.conf for a plan; everything nginx writes goes under `directory`."""
    upstreams = {}
    for server in p.servers.values():
        for backend, _owner in [*server.locations.values(),
                                *([server.default] if server.default else [])]:
            if backend.upstream and backend.endpoints:
                upstreams[backend.upstream] = backend.endpoints
    lines = [
        "# rendered by the testbed's ingress controller; each change reloads nginx",
        "worker_processes 1;", "user root;", f"pid {directory}/nginx.pid;",
        f"error_log {directory}/error.log notice;", "events { worker_connections 4096; }",
        "http {",
        f"  access_log {directory}/access.log;",
        *[f"  {kind}_temp_path {directory}/tmp/{kind};"
          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")],
        "  server_names_hash_bucket_size 128;",
        "  server_tokens off;",
        "  proxy_http_version 1.1;",
        "  proxy_set_header Connection \"\";",
        "  proxy_set_header Host $host;",
        "  proxy_set_header X-Real-IP $remote_addr;",
        "  proxy_set_header X-Forwarded-For $remote_addr;",
        "  proxy_set_header X-Forwarded-Host $host;",
        "  proxy_set_header X-Forwarded-Proto $scheme;",
    ]
    for name, endpoints in sorted(upstreams.items()):
        lines += [f"  upstream {name} {{"] + [f"    server {ep};" for ep in endpoints] + \
            ["    keepalive 32;", "  }"]
    for host, server in sorted(p.servers.items(), key=lambda s: (s[0] != "_", s[0])):
        catch_all = host == "_"
        cert = server.certificate if server.certificate and \
            server.certificate != ("fake", "fake") else fake
        lines += ["  server {",
                  f"    listen 80{' default_server' if catch_all else ''};",
                  f"    listen 443 ssl{' default_server' if catch_all else ''};",
                  f"    server_name {host};",
                  f"    ssl_certificate {cert[0]};", f"    ssl_certificate_key {cert[1]};"]
        if server.certificate and not catch_all:
            lines += ["    if ($scheme = http) { return 308 https://$host$request_uri; }"]
        for (modifier, path), (backend, _owner) in sorted(server.locations.items(),
                                                          key=lambda item: item[0][1]):
            lines += [f"    location {modifier + ' ' if modifier else ''}{path} {{",
                      f"      {_answer(backend)}", "    }"]
        if ("", "/") not in server.locations:
            answer = _answer(server.default[0]) if server.default else DEFAULT_404
            lines += ["    location / {", f"      {answer}", "    }"]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _answer(backend: Backend) -> str:
    if backend.problem or not backend.endpoints:
        return NO_ENDPOINTS
    return f"proxy_pass http://{backend.upstream};"
