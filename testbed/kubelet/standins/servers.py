"""The stand-ins themselves: agnhost's serve-hostname, netexec, porter, pause and connect, and an
nginx-like page server, answering as the images do.

    python -m testbed.kubelet.standins --hostname POD SUBCOMMAND [agnhost's flags]
    python -m testbed.kubelet.standins --hostname POD http --port 80

Each follows agnhost's own code: serve-hostname writes the hostname on every TCP connection
(`--tcp`), UDP datagram (`--udp`) or HTTP request (`--http`, the default; `--close` adds
"Connection: close"), and refuses HTTP together with TCP or UDP; netexec serves its HTTP
endpoints and a UDP server (port 8081 unless `--udp-port=-1`); porter serves the value of each
SERVE_{PORT,TCP_PORT,UDP_PORT,SCTP_PORT}_<n> variable on port n; connect exits 0 when the
connection works and prints TIMEOUT, REFUSED, DNS or OTHER when it does not.
"""
from __future__ import annotations

import http.server
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from testbed.kubelet.standins import flags as fl

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations unevaluated: a stand-in, one per container, loads no typing
    from collections.abc import Callable, Mapping
    from typing import NoReturn

    # (method, path, query, client) -> (status, body, headers), or None for 404
    Routes = Callable[[str, str, dict, tuple], "tuple[int, str, dict] | None"]
    Answer = Callable[[str, tuple], "str | None"]  # a datagram's text and sender -> reply
    Handle = Callable[[socket.socket, tuple], None]  # a connection and its peer

SCTP = getattr(socket, "IPPROTO_SCTP", 132)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fatal(message: str) -> NoReturn:
    """As Go's log.Fatal: the message, then exit 1 (the container fails)."""
    log(message)
    os._exit(1)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096  # Go listens with the kernel's somaxconn, not socketserver's 5

    def server_bind(self):
        """Bind, without HTTPServer's reverse lookup of its own address (socket.getfqdn),
        which Go's server never makes: in a pod whose /etc/hosts is the kubelet's it would
        ask a DNS server, and wait for one the emulation does not have."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _DualStackServer(_Server):
    """Listening on [::] for both families, as Go's net.Listen("tcp", ":port")."""
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def _has_global_ipv6() -> bool:
    """Has this network namespace an IPv6 address beyond link-local and loopback (a pod of a
    dual-stack cluster)?"""
    try:
        with open("/proc/net/if_inet6") as f:
            return any(line.split()[3] == "00" for line in f)  # scope: global
    except OSError:
        return False


def listen_on(bind: str) -> tuple[int, str]:
    """(socket family, address) to listen on for `bind`: the wildcard in a pod with IPv6 is
    [::] for both families, as Go listens on ":port" where IPv6 is; else as given."""
    if bind in ("", "0.0.0.0") and _has_global_ipv6():
        return socket.AF_INET6, "::"
    return (socket.AF_INET6 if ":" in bind else socket.AF_INET), bind


def peer_of(address: tuple) -> tuple[str, int]:
    """A client's (ip, port), an IPv4 client of a dual-stack socket unmapped (::ffff:a.b.c.d
    -> a.b.c.d), as Go reports it."""
    ip = address[0][7:] if address[0].startswith("::ffff:") else address[0]
    return ip, address[1]


def host_port(address: tuple) -> str:
    """ip:port as Go writes a remote address ([ip]:port for IPv6)."""
    ip, port = peer_of(address)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _listening(kind: int, bind: str, proto: int = 0) -> socket.socket:
    family, address = listen_on(bind)
    sock = socket.socket(family, kind, proto)
    if family == socket.AF_INET6 and address == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return sock


def access_line(client: str, request_line: str, status: int, size: int, referer: str | None,
                agent: str | None) -> str:
    """A request as nginx's image logs it to stdout (its `main` log format)."""
    when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    return f'{client} - - [{when}] "{request_line}" {status} {size} "{referer or "-"}" ' \
           f'"{agent or "-"}" "-"'


def http_server(bind: str, port: int, routes: Routes, close: bool = False,
                access_log: bool = False) -> socketserver.TCPServer:
    """An HTTP/1.1 server (keep-alive, as Go's) whose routes(method, path, query, client) give
    (status, body, headers) or None for 404; with access_log, each request printed as nginx
    prints it."""
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as Go sets on every connection: headers and body go out in two
        # writes, and on a kept-alive connection Nagle would hold the body for the
        # client's delayed ACK (40 ms)
        disable_nagle_algorithm = True

        def answer(self):
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            found = routes(self.command, url.path, query, peer_of(self.client_address))
            status, body, headers = found or (404, "404 page not found\n", {})
            data = body.encode()
            self.send_response(status)
            for key, value in {"Content-Type": "text/plain; charset=utf-8", **headers}.items():
                self.send_header(key, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if access_log:
                print(access_line(peer_of(self.client_address)[0], self.requestline, status,
                                  len(data),
                                  self.headers.get("Referer"), self.headers.get("User-Agent")),
                      flush=True)

        do_GET = do_POST = do_PUT = do_HEAD = answer

        def log_message(self, *args):
            pass

    family, address = listen_on(bind)
    try:
        if family == socket.AF_INET6 and address == "::":
            return _DualStackServer((address, port), Handler)
        return (_Server6 if family == socket.AF_INET6 else _Server)((address, port), Handler)
    except OSError as e:
        fatal(f"listen tcp :{port}: {e.strerror}")


def serve_in_background(server: socketserver.BaseServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def udp_server(bind: str, port: int, answer: Answer, size: int = 2048) -> None:
    """answer(text, (ip, port)) -> reply text or None, per datagram."""
    sock = _listening(socket.SOCK_DGRAM, bind)
    try:
        sock.bind((listen_on(bind)[1], port))
    except OSError as e:
        fatal(f"listen udp :{port}: {e.strerror}")

    def loop():
        while True:
            data, peer = sock.recvfrom(size)
            reply = answer(data.decode(errors="replace"), peer_of(peer))
            if reply is not None:
                sock.sendto(reply.encode(), peer)
    threading.Thread(target=loop, daemon=True).start()


def stream_server(bind: str, port: int, proto: int, handle: Handle) -> None:
    """A TCP or SCTP listener; handle(conn, peer) per connection, in its own thread."""
    name = "sctp" if proto == SCTP else "tcp"
    try:
        sock = _listening(socket.SOCK_STREAM, bind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen_on(bind)[1], port))
        sock.listen(128)
    except OSError as e:
        fatal(f"listen {name} :{port}: {e.strerror}" +
              (" (this kernel has no SCTP sockets: module sctp)" if proto == SCTP else ""))

    def loop():
        while True:
            conn, peer = sock.accept()
            threading.Thread(target=handle, args=(conn, peer_of(peer)), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def write_and_close(value: str) -> Handle:
    def handle(conn: socket.socket, peer: tuple) -> None:
        with conn:
            conn.sendall(value.encode())
    return handle


# --- serve-hostname ---------------------------------------------------------------------------
def serve_hostname(hostname: str, bind: str, opts: dict) -> None:
    if opts["http"] and (opts["tcp"] or opts["udp"]):
        fatal("Can't server TCP/UDP mode and HTTP mode at the same time")
    port = opts["port"]
    if opts["tcp"]:
        stream_server(bind, port, socket.IPPROTO_TCP, write_and_close(hostname))
    if opts["udp"]:
        udp_server(bind, port, lambda _text, _peer: hostname, size=16)
    if opts["http"]:
        serve_in_background(http_server(bind, port, lambda *_: (200, hostname, {}),
                                        close=opts["close"]))
    log(f"Serving on port {port}.")


# --- netexec ----------------------------------------------------------------------------------
def netexec_routes(hostname: str, dial_timeout: float = 5.0) -> Routes:
    def dial(query):
        host, port = query.get("host", [""])[0], query.get("port", [""])[0]
        request = query.get("request", [""])[0]
        protocol = query.get("protocol", ["http"])[0].lower() or "http"
        if not request:
            return 400, "request parameter not specified. <nil>\n", {}
        try:
            tries = int(query.get("tries", ["1"])[0])
        except ValueError as e:
            return 400, f"tries parameter is invalid. {e}\n", {}
        if protocol not in ("http", "udp"):
            return 400, f"unsupported protocol. {protocol}\n", {}
        responses, errors = [], []
        for _ in range(tries):
            try:
                where = f"[{host}]" if ":" in host else host
                if protocol == "http":
                    with urllib.request.urlopen(f"http://{where}:{port}/{request}",
                                                timeout=dial_timeout) as r:
                        responses.append(r.read().decode())
                else:
                    family = socket.AF_INET6 if ":" in host else socket.AF_INET
                    with socket.socket(family, socket.SOCK_DGRAM) as s:
                        s.settimeout(dial_timeout)
                        s.sendto(request.encode(), (host, int(port)))
                        responses.append(s.recv(2048).decode())
            except (OSError, ValueError) as e:
                errors.append(str(e))
        out = {}
        if responses:
            out["responses"] = responses
        if errors:
            out["errors"] = errors
        return 200, json.dumps(out), {}

    def shell(query):
        cmd = query.get("shellCommand", query.get("cmd", [""]))[0]
        proc = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True)
        out = {}
        if proc.stdout or proc.stderr:
            out["output"] = proc.stdout + proc.stderr
        if proc.returncode:
            out["error"] = f"exit status {proc.returncode}"
        return 200, json.dumps(out), {}

    def exit_now(query):
        code = int(query.get("code", ["0"])[0] or 0)
        threading.Timer(0.05, os._exit, args=(code,)).start()
        return 200, "", {}

    def routes(_method, path, query, client):
        if path == "/":
            return 200, f"NOW: {time.strftime('%Y-%m-%d %H:%M:%S %z %Z')}", {}
        if path in ("/hostname", "/hostName"):
            return 200, hostname, {}
        if path == "/clientip":
            return 200, host_port(client), {}
        if path == "/echo":
            code = query.get("code", [""])[0]
            return (int(code) if code.isdigit() else 200), query.get("msg", [""])[0], {}
        if path == "/healthz":
            return 200, "", {}
        if path == "/dial":
            return dial(query)
        if path == "/shell":
            return shell(query)
        if path == "/redirect":
            code = query.get("code", [""])[0]
            return (int(code) if code.isdigit() else 303), "", \
                {"Location": query.get("location", ["/"])[0]}
        if path in ("/exit", "/shutdown"):
            return exit_now(query)
        return None
    return routes


def netexec_udp(hostname: str) -> Answer:
    def answer(text, peer):
        word, _, rest = text.strip().partition(" ")
        return {"hostname": hostname, "echo": rest, "clientip": host_port(peer)}.get(word)
    return answer


def netexec(hostname: str, bind: str, opts: dict) -> None:
    routes = netexec_routes(hostname)
    if opts["http-override"]:
        override = urllib.parse.urlparse(opts["http-override"])
        fixed = urllib.parse.parse_qs(override.query)
        inner = routes
        routes = lambda method, _path, _query, client: inner("GET", override.path, fixed, client)  # noqa: E731
    if opts["udp-port"] != -1:
        addresses = [a.strip() for a in opts["udp-listen-addresses"].split(",") if a.strip()]
        for address in addresses or [bind]:
            udp_server(address, opts["udp-port"], netexec_udp(hostname))
    if opts["sctp-port"] != -1:
        def sctp_answer(conn, peer):
            with conn:
                reply = netexec_udp(hostname)(conn.recv(1024).decode(errors="replace"), peer)
                if reply is not None:
                    conn.sendall(reply.encode())
        stream_server(bind, opts["sctp-port"], SCTP, sctp_answer)
    serve_in_background(http_server(bind, opts["http-port"], routes))
    log(f"Started HTTP server on port {opts['http-port']}")


# --- porter -----------------------------------------------------------------------------------
PORTER_PREFIXES = {"SERVE_PORT_": "tcp", "SERVE_TCP_PORT_": "tcp", "SERVE_UDP_PORT_": "udp",
                   "SERVE_SCTP_PORT_": "sctp", "SERVE_TLS_PORT_": "tls"}


def porter_ports(environ: Mapping[str, str]) -> list[tuple[str, int, str]]:
    """[(protocol, port, value)] of porter's SERVE_* variables, as porter reads them."""
    out = []
    for key, value in sorted(environ.items()):
        for prefix, proto in sorted(PORTER_PREFIXES.items(), key=lambda p: -len(p[0])):
            if key.startswith(prefix) and key[len(prefix):].isdigit():
                out.append((proto, int(key[len(prefix):]), value))
                break
    return out


def porter(_hostname: str, bind: str, opts: dict) -> None:
    for proto, port, value in porter_ports(os.environ):
        if proto == "tcp":
            def body(method, value=value):
                if opts["json-response"]:
                    return 200, json.dumps({"Method": method, "Body": value}), \
                        {"Content-Type": "application/json"}
                return 200, value, {}
            serve_in_background(http_server(bind, port, lambda m, *_, b=body: b(m)))
        elif proto == "udp":
            udp_server(bind, port, lambda _t, _p, v=value: v, size=16)
        elif proto == "sctp":
            stream_server(bind, port, SCTP, write_and_close(value))
        else:
            log(f"SERVE_TLS_PORT_{port}: TLS is not imitated by the testbed (not served)")


# --- pause and connect ------------------------------------------------------------------------
def pause(_hostname: str, _bind: str, _opts: dict) -> None:
    log("Paused")


def connect(_hostname: str, _bind: str, opts: dict, dest: str) -> int:
    """agnhost connect HOST:PORT: exit status 0 if it connects; else one of agnhost's words."""
    host, _, port = dest.rpartition(":")
    if not host or not port.isdigit():
        print(f"UNKNOWN: address {dest}: missing port in address", file=sys.stderr)
        return 1
    try:
        address = socket.gethostbyname(host.strip("[]"))
    except OSError as e:
        print(f"DNS: lookup {host}: {e}", file=sys.stderr)
        return 1
    timeout = opts["timeout"] or None
    protocol = opts["protocol"] or "tcp"
    if protocol not in ("tcp", "udp", "sctp"):
        print(f"Unsupported protocol\n{protocol}", file=sys.stderr)
        return 1
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    proto = SCTP if protocol == "sctp" else 0
    try:
        with socket.socket(socket.AF_INET, kind, proto) as s:
            s.settimeout(timeout)
            s.connect((address, int(port)))
            if protocol != "tcp":
                s.send((opts[f"{protocol}-data"] + "\n").encode())
                if not s.recv(1024):
                    print("OTHER: No data received from the server.", file=sys.stderr)
                    return 1
        return 0
    except socket.timeout:
        print("TIMEOUT", file=sys.stderr)
    except ConnectionRefusedError:
        print("REFUSED", file=sys.stderr)
    except OSError as e:
        print(f"OTHER: {e.strerror or e}", file=sys.stderr)
    return 1


SERVERS = {"serve-hostname": serve_hostname, "netexec": netexec, "porter": porter,
           "pause": pause}


def nginx_page(hostname: str, bind: str, port: int) -> None:
    page = f"<html><body><h1>Welcome to nginx!</h1><p>{hostname}</p></body></html>\n"
    def routes(*_):
        return 200, page, {"Content-Type": "text/html"}
    serve_in_background(http_server(bind, port, routes, access_log=True))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    hostname, bind = socket.gethostname(), "0.0.0.0"
    while argv[:1] in (["--hostname"], ["--bind"]):  # the testbed's own, before the subcommand
        option, value = argv[0], argv[1]
        argv = argv[2:]
        hostname, bind = (value, bind) if option == "--hostname" else (hostname, value)
    if not argv:
        fatal("usage: testbed.kubelet.standins [--hostname NAME] SUBCOMMAND [flags]")
    sub, rest = argv[0], argv[1:]
    if sub == "http":
        port = int(rest[rest.index("--port") + 1]) if "--port" in rest else 80
        nginx_page(hostname, bind, port)
    elif sub in fl.SUBCOMMANDS:
        try:
            parsed = fl.parse(sub, rest)
        except fl.FlagError as e:
            fatal(f"Error: {e}")
        for name in parsed.not_imitated:
            log(f"agnhost {sub} --{name}: not imitated by the testbed (ignored)")
        if sub == "connect":
            if len(parsed.args) != 1:
                fatal(f"Error: accepts 1 arg(s), received {len(parsed.args)}")
            return connect(hostname, bind, parsed.values, parsed.args[0])
        SERVERS[sub](hostname, bind, parsed.values)
    else:
        fatal(f'Error: unknown command "{sub}" for "agnhost"')
    print(f"{sub} for {hostname} on pid {os.getpid()}", flush=True)
    threading.Event().wait()  # until SIGTERM ends the container, as it ends agnhost
    return 0
