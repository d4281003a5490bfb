"""The controller's counters, served as JSON on a Unix socket for `testbed` and the tests.

Packet-ins are what the fabric must avoid in steady state, so they are counted per switch.
"""
import json
import os

from os_ken.lib import hub


class Counters:
    _shared = None

    @classmethod
    def shared(cls):
        """One set of counters per controller process, whatever apps it runs."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __init__(self):
        self.switches = {}  # dpid (hex) -> {"packet_in", "flows_installed", "learned"}

    def _switch(self, dpid):
        return self.switches.setdefault(f"{dpid:016x}", {"packet_in": 0, "flows_installed": 0,
                                                        "learned": []})

    def switch_joined(self, dpid):
        self._switch(dpid)

    def packet_in(self, dpid):
        self._switch(dpid)["packet_in"] += 1

    def flow_installed(self, dpid):
        self._switch(dpid)["flows_installed"] += 1

    def learned(self, dpid, mac):
        learned = self._switch(dpid)["learned"]
        if mac not in learned:
            learned.append(mac)

    def snapshot(self):
        return {"pid": os.getpid(), "switches": self.switches,
                "packet_in": sum(s["packet_in"] for s in self.switches.values())}


def serve(path):
    """Answer every connection on the Unix socket `path` with the counters, then close it."""
    if os.path.exists(path):
        os.unlink(path)

    def answer(sock, _addr):
        try:
            sock.sendall(json.dumps(Counters.shared().snapshot()).encode() + b"\n")
        finally:
            sock.close()

    server = hub.StreamServer((path, 0), answer)
    return hub.spawn(server.serve_forever)
