"""kube-proxy's own listeners on a node, one process per node (kube-proxy@NODE): what a real
kube-proxy serves besides its rules.

- :10256 /healthz and /livez, kube-proxy's health server (200 while it runs, JSON with
  lastUpdated and currentTime, as kube-proxy writes them);
- each healthCheckNodePort of a LoadBalancer with externalTrafficPolicy Local: 200 with the
  number of local endpoints when this node has some, 503 when it has none, the answer a
  cloud load balancer's health check reads to send traffic only to nodes with endpoints
  (kube-proxy's pkg/proxy/healthcheck: JSON {"service": {...}, "localEndpoints": n,
  "serviceProxyHealthy": true} and header X-Load-Balancing-Endpoint-Weight).

- in kube-proxy's userspace mode, the proxy itself (proxier.py): one listener per Service
  port on the node's address, each connection sent to an endpoint round-robin.

The owner sends the whole configuration over a Unix control socket (JSON lines, as
host/rpc.py speaks): {"config": {...}} opens and closes listeners to match and answers
{"ok": true, "ports": {service port: proxy port}} or {"error": "..."}; {"stats": true}
answers what it serves. Only the standard library is imported: the process starts in tens of
milliseconds.

    python3 -m testbed.kubeproxy.agent CONTROL_SOCKET NODE_NAME
"""
import json
import os
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testbed.kubeproxy.proxier import Portal

HEALTHZ_PORT = 10256


class _Quiet(BaseHTTPRequestHandler):
    server_version = "kube-proxy"

    def log_message(self, *args):  # the node's log has kube-proxy's lines, not one per hit
        pass

    def answer(self, code, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Agent:
    def __init__(self, node: str):
        self.node = node
        self.lock = threading.Lock()
        self.servers = {}   # port -> ThreadingHTTPServer
        self.services = {}  # health-check port -> {"namespace", "name", "localEndpoints"}
        self.portals = {}   # service port ("ns/svc:port/tcp") -> Portal (userspace mode)
        self.updated = time.time()

    # --- listeners ---------------------------------------------------------------------
    def open(self, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        server = ThreadingHTTPServer(("0.0.0.0", port), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers[port] = server

    def close(self, port: int) -> None:
        server = self.servers.pop(port)
        server.shutdown()
        server.server_close()

    def healthz_handler(self) -> type[BaseHTTPRequestHandler]:
        agent = self

        class Healthz(_Quiet):
            def do_GET(self):
                if self.path.split("?")[0] not in ("/healthz", "/livez"):
                    return self.answer(404, {"error": "not found"})
                now = time.strftime("%Y-%m-%d %H:%M:%S.000000000 +0000 UTC", time.gmtime())
                updated = time.strftime("%Y-%m-%d %H:%M:%S.000000000 +0000 UTC",
                                        time.gmtime(agent.updated))
                self.answer(200, {"lastUpdated": updated, "currentTime": now,
                                  "nodeEligible": True})
        return Healthz

    def health_check_handler(self, port: int) -> type[BaseHTTPRequestHandler]:
        agent = self

        class HealthCheck(_Quiet):
            def do_GET(self):
                with agent.lock:
                    svc = dict(agent.services.get(port, {}))
                count = svc.get("localEndpoints", 0)
                self.answer(200 if count else 503, {
                    "service": {"namespace": svc.get("namespace", ""),
                                "name": svc.get("name", "")},
                    "localEndpoints": count, "serviceProxyHealthy": True},
                    [("X-Load-Balancing-Endpoint-Weight", str(count))])
        return HealthCheck

    # --- configuration -------------------------------------------------------------------
    def configure(self, config: dict) -> dict:
        """Listeners to match `config`; returns the proxy port of every portal."""
        self.configure_portals(config.get("listen", "0.0.0.0"), config.get("portals", {}))
        wanted = {int(p): s for p, s in config.get("health_checks", {}).items()}
        with self.lock:
            self.services = wanted
            self.updated = time.time()
        for port in [p for p in self.servers if p != HEALTHZ_PORT and p not in wanted]:
            self.close(port)
        for port in wanted:
            if port not in self.servers:
                self.open(port, self.health_check_handler(port))
        return {name: portal.port for name, portal in self.portals.items()}

    def configure_portals(self, address: str, wanted: dict[str, dict]) -> None:
        for name in [n for n in self.portals if n not in wanted]:
            self.portals.pop(name).close()
        for name, spec in wanted.items():
            if name not in self.portals:
                self.portals[name] = Portal(name, spec["protocol"], address)
            self.portals[name].update([tuple(ep) for ep in spec["endpoints"]], spec["affinity"])

    def stats(self) -> dict:
        return {"node": self.node, "listening": sorted(self.servers),
                "health_checks": {str(p): s for p, s in self.services.items()},
                "portals": {n: portal.stats() for n, portal in self.portals.items()}}


def serve(control: str, node: str) -> None:
    agent = Agent(node)
    agent.open(HEALTHZ_PORT, agent.healthz_handler())

    class Control(socketserver.StreamRequestHandler):
        def handle(self):
            try:
                request = json.loads(self.rfile.readline())
                if "config" in request:
                    reply = {"ok": True, "ports": agent.configure(request["config"])}
                else:
                    reply = agent.stats()
            except (ValueError, OSError) as e:
                reply = {"error": f"{type(e).__name__}: {e}"}
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    if os.path.exists(control):
        os.unlink(control)
    server = socketserver.UnixStreamServer(control, Control)
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime()) + f".{int(time.time() % 1 * 1e6):06d}"
    print(f'I{stamp} {os.getpid():>7} server.go] "Serving" node="{node}" '
          f'healthz="0.0.0.0:{HEALTHZ_PORT}" control="{control}"', flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
