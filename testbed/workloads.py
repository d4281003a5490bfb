"""Built-in stand-ins for container images, since pods here have no container runtime.

    python -m testbed.workloads --hostname POD serve-hostname [--port 9376] [--udp]
    python -m testbed.workloads --hostname POD netexec [--http-port 8080] [--udp-port N]
    python -m testbed.workloads --hostname POD http --port 80

They answer as the images do: agnhost serve-hostname with the pod's name, agnhost netexec's
HTTP endpoints (/hostname, /echo?msg=, /clientip, /healthz; on UDP "hostname", "echo MSG",
"clientip"), an nginx-like server with a page naming the pod. command_for() picks the stand-in
for a container from its image and args.
"""
import argparse
import http.server
import os
import shlex
import socket
import socketserver
import sys
import threading
import urllib.parse

AGNHOST = "agnhost"
HTTP_IMAGES = ("nginx", "httpd", "caddy")
SLEEPING_IMAGES = ("busybox", "alpine", "ubuntu", "debian", "curl", "netshoot")


def command_for(container, pod_name):
    """(argv, warning or None) of the process standing in for a container."""
    image = container.image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    me = [sys.executable, "-m", "testbed.workloads", "--hostname", pod_name]
    if image == AGNHOST:
        args = list(container.command[1:] if container.command else ()) + list(container.args)
        if args and args[0] in ("serve-hostname", "netexec"):
            return me + args, None
        return ["sleep", "infinity"], (f"agnhost {args[0] if args else '(no subcommand)'} is "
                                       "not built in (serve-hostname and netexec are): the "
                                       "container sleeps")
    if image in HTTP_IMAGES:
        ports = [p.container_port for p in container.ports if p.protocol == "TCP"]
        return me + ["http", "--port", str(ports[0] if ports else 80)], None
    if container.command or container.args:
        return list(container.command) + list(container.args), None
    if image in SLEEPING_IMAGES:
        return ["sleep", "infinity"], None
    return ["sleep", "infinity"], (f"image {container.image} has no built-in workload: the "
                                   "container sleeps")


def tcp_ports(argv):
    """The TCP ports a stand-in started with `argv` (from command_for) listens on."""
    if argv[:3] != [sys.executable, "-m", "testbed.workloads"]:
        return []
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("workload")
    parser.add_argument("--port", type=int)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--http", default="true")
    args, _ = parser.parse_known_args(argv[5:])  # after --hostname NAME
    if args.workload == "serve-hostname":
        return [args.port or 9376] if args.http.lower() not in ("false", "0") else []
    if args.workload == "netexec":
        return [args.http_port]
    return [args.port or 80]


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _http(bind, port, routes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            body = routes(url.path, urllib.parse.parse_qs(url.query), self.client_address[0])
            code = 200 if body is not None else 404
            data = (body if body is not None else "404 page not found\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return _Server((bind, port), Handler)


def _udp(bind, port, answer):
    def loop():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((bind, port))
            while True:
                data, peer = s.recvfrom(2048)
                reply = answer(data.decode(errors="replace").strip(), peer[0])
                if reply is not None:
                    s.sendto(reply.encode(), peer)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def netexec_routes(hostname):
    def routes(path, query, client):
        if path in ("/", "/hostname"):
            return hostname
        if path == "/echo":
            return query.get("msg", [""])[0]
        if path == "/clientip":
            return f"{client}:0"
        if path == "/healthz":
            return "ok"
        return None
    return routes


def netexec_udp(hostname):
    def answer(text, client):
        word, _, rest = text.partition(" ")
        return {"hostname": hostname, "echo": rest, "clientip": client}.get(word)
    return answer


def main(argv=None):
    parser = argparse.ArgumentParser(prog="testbed.workloads")
    parser.add_argument("--hostname", default=socket.gethostname())
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on (the pod's)")
    sub = parser.add_subparsers(dest="workload", required=True)
    sh = sub.add_parser("serve-hostname")
    sh.add_argument("--port", type=int, default=9376)
    sh.add_argument("--udp", action="store_true")
    sh.add_argument("--http", default="true")
    sh.add_argument("--tcp", action="store_true")
    ne = sub.add_parser("netexec")
    ne.add_argument("--http-port", type=int, default=8080)
    ne.add_argument("--udp-port", type=int, default=0)
    web = sub.add_parser("http")
    web.add_argument("--port", type=int, default=80)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"testbed.workloads: ignoring {shlex.join(unknown)}", file=sys.stderr)
    name, bind = args.hostname, args.bind
    server = None
    if args.workload == "serve-hostname":
        if args.udp:
            _udp(bind, args.port, lambda _text, _client: name)
        if args.http.lower() not in ("false", "0"):
            server = _http(bind, args.port, lambda path, q, c: name)
    elif args.workload == "netexec":
        if args.udp_port:
            _udp(bind, args.udp_port, netexec_udp(name))
        server = _http(bind, args.http_port, netexec_routes(name))
    else:
        page = f"<html><body><h1>Welcome to nginx!</h1><p>{name}</p></body></html>\n"
        server = _http(bind, args.port, lambda path, q, c: page)
    print(f"{args.workload} for {name} on pid {os.getpid()}", flush=True)
    if server is not None:
        server.serve_forever()
    threading.Event().wait()  # UDP only


if __name__ == "__main__":
    main()
