"""Request/response latency in time-sliced turns (native/rr-probe.c).

Why not sockperf here: a request/response test has to be paused between turns to be paired
with the bare underlay a tenth of a second apart, and sockperf stopped mid-run leaves the
pause out of both its timer and its log, so its statistics cannot be cut into turns. The probe
keeps one connection per flow and measures only when told, one turn at a time.

Client and server are pinned as the session's placement says (cpus), as iperf3 is, and the run
holds the idle CPUs polling (cpu.idle_polling): otherwise the hypervisor's wake-ups of a halted
vCPU would be most of every round trip.
Latencies are reported as half the round trip, as sockperf reports them (results of either
tool read alike).
"""
import os
import subprocess

import testbed
from bench.engine.cpu import TurnMeter
from bench.engine.slicing import Flow, FlowSession
from bench.tools.tool import ToolError

PROBE = testbed.BUILD / "rr-probe"
PORT = 11211           # the first flow's; each flow of a session takes the next
MSG_SIZE = 64          # bytes per request and per response
WARM_UP_S = 0.1        # an unrecorded first turn: connection, caches, neighbours


def parse_turn(line: str) -> dict:
    """Metrics of one turn from the probe's line `<round trips> <lost> <p50> <p99> <mean>` (ns
    of a whole round trip); ToolError when nothing came back."""
    fields = line.split()
    if len(fields) != 5 or not all(f.isdigit() for f in fields):
        raise ToolError(f"rr-probe: unexpected output {line.strip()[:80]!r}")
    trips, lost, p50, p99, mean = (int(f) for f in fields)
    if trips == 0:
        raise ToolError(f"rr-probe: no response in the turn ({lost} requests lost)")
    half_us = 1 / 2000  # ns of a round trip -> µs one way
    return {"p50_us": p50 * half_us, "p99_us": p99 * half_us, "avg_us": mean * half_us,
            "round_trips": trips, "lost": lost}


def probe_path() -> str:
    if not os.access(PROBE, os.X_OK):
        raise ToolError(f"{PROBE} is not built: run scripts/install.sh (it compiles "
                        "native/rr-probe.c)")
    return str(PROBE)


class SlicedRR(FlowSession):
    """One probe client per flow, each with its own server, measured one turn at a time."""
    first_port = PORT

    def __init__(self, flows: list[Flow], protocol: str, cpus: tuple[int, int] | None = None):
        super().__init__(flows, cpus)
        self.protocol = protocol

    def prepare(self) -> None:
        self.probe = probe_path()

    def _serve(self, flow, port):
        self.servers[flow] = subprocess.Popen(
            flow.server.argv(self.pinned([self.probe, "server", self.protocol, str(port),
                                          str(MSG_SIZE)], 1)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _connect(self, flow, port):
        # own session: a Ctrl-C reaches the harness, which ends the probes itself
        self.clients[flow] = subprocess.Popen(
            flow.client.argv(self.pinned([self.probe, "client", self.protocol, flow.server.ip,
                                          str(port), str(MSG_SIZE)], 0)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1, start_new_session=True)

    def _started(self):
        self._each(lambda flow, _port: self._ask(flow, WARM_UP_S), list(self.clients))

    def _ask(self, flow, seconds):
        client = self.clients[flow]
        try:
            client.stdin.write(f"{seconds:.6f}\n")
            client.stdin.flush()
        except BrokenPipeError:
            pass
        line = client.stdout.readline()
        if not line:
            err = client.stderr.read().strip() if client.poll() is not None else ""
            raise ToolError(err.splitlines()[-1] if err else "rr-probe client ended")
        return parse_turn(line)

    def _measure(self, flow, seconds):
        meter = TurnMeter()
        return meter.turn(self._ask(flow, seconds), seconds)

    def __exit__(self, *exc):
        for client in self.clients.values():
            try:
                client.stdin.close()  # end of input: a client ends by itself
                client.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                client.kill()
        for server in self.servers.values():
            server.kill()  # an echo server runs until stopped
        for proc in list(self.clients.values()) + list(self.servers.values()):
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
