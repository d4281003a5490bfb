"""The controller's control socket: `testbed` asks for counters and tells apps what the
cluster holds, one JSON request and one JSON reply per connection.

    {"op": "stats"}                 -> the counters (packet-ins are counted per switch: the
                                       fabric and the openflow mode must avoid them)
    {"op": <an app's operation>...} -> what the app's handler returns, or {"error": ...}
"""
import json
import logging
import os
import threading
from collections.abc import Callable

from os_ken.lib import hub

LOG = logging.getLogger("testbed.osken")


class Counters:
    _shared = None

    @classmethod
    def shared(cls) -> "Counters":
        """One set of counters per controller process, whatever apps it runs."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __init__(self) -> None:
        # dpid (hex) -> {"packet_in", "flows_installed", "learned"}
        self.switches: dict[str, dict] = {}

    def _switch(self, dpid: int) -> dict:
        return self.switches.setdefault(f"{dpid:016x}", {"packet_in": 0, "flows_installed": 0,
                                                        "learned": []})

    def switch_joined(self, dpid: int) -> None:
        self._switch(dpid)

    def packet_in(self, dpid: int) -> None:
        self._switch(dpid)["packet_in"] += 1

    def flow_installed(self, dpid: int) -> None:
        self._switch(dpid)["flows_installed"] += 1

    def learned(self, dpid: int, mac: str) -> None:
        learned = self._switch(dpid)["learned"]
        if mac not in learned:
            learned.append(mac)

    def snapshot(self) -> dict:
        return {"pid": os.getpid(), "switches": self.switches,
                "packet_in": sum(s["packet_in"] for s in self.switches.values())}


_handlers = {"stats": lambda request: Counters.shared().snapshot()}
# requests arrive on the control socket's thread, events on os-ken's: apps hold this lock
lock = threading.RLock()


def handle(op: str, handler: Callable[[dict], dict]) -> None:
    """Let an app answer requests {"op": op, ...}: handler(request) -> a JSON-able reply."""
    _handlers[op] = handler


def answer(request: object) -> dict:
    handler = _handlers.get(request.get("op")) if isinstance(request, dict) else None
    if handler is None:
        return {"error": f"unknown request {request!r}"}
    try:
        with lock:
            return handler(request)
    except Exception as e:  # a bad request must not take the controller down
        LOG.exception("request %r failed", request)
        return {"error": f"{type(e).__name__}: {e}"}


def serve(path: str) -> None:
    """Answer requests on the Unix socket `path`, one per connection."""
    if os.path.exists(path):
        os.unlink(path)

    def connection(sock, _addr):
        try:
            reader = sock.makefile("rb")
            line = reader.readline()
            try:
                request = json.loads(line) if line.strip() else {"op": "stats"}
            except ValueError:
                request = None
            sock.sendall(json.dumps(answer(request)).encode() + b"\n")
        finally:
            sock.close()

    server = hub.StreamServer((path, 0), connection)
    return hub.spawn(server.serve_forever)
