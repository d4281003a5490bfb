"""Paired measurement: every mode's flow measured right next to the bare underlay's.

Why: on this kind of machine one TCP stream's rate moves 15-25 % from one tenth of a second to
the next (the vCPUs' own speed, not the datapath; bench/studies/variance.py measures it), so samples
taken seconds apart cannot tell datapaths within 20 % apart. So each comparison is paired in
time: the schedule puts a bare turn before and after every mode's turn,

    bare, A, bare, B, bare, C, bare, ...   (the order of A, B, C rotating from cycle to cycle)

and each turn of a mode is recorded with the mean of the two bare turns around it as its
baseline; compare.py turns those pairs into ratios with confidence intervals.

Throughput (tcp-1, tcp-n) is time-sliced: every flow's iperf3 client runs for the whole
session, stopped (SIGSTOP) except during its turn of `slice_s` seconds, and a turn's rate is
what the server's interface received during it (/proc/<server pid>/net/dev); the next turn
starts once the stopped flow has delivered what it had queued (drain()). The clients' TCP
keeps its congestion window while stopped (tcp_slow_start_after_idle=0 in their namespaces).
Request/response latency is time-sliced too, by a probe that measures only when told
(rrprobe.py). Other tests run the tool afresh in each turn (sequential turns of a second).

A session's tools live only for that session: the harness runs several sessions per test,
each with fresh processes and connections and its own placement, because what a session fixes
when it starts, and the machine's state while it runs, are shared by all its turns and move
from one session to the next (compare.py takes the session as its unit of replication).
"""
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench.engine.cpu import TurnMeter, end_stopped, last_cpu, pinned
from bench.tools import iperf3
from bench.tools.tool import ToolError, wait_listening

SETTLE_S = 0.002  # after a stop, for the last in-flight bytes to arrive
START_S = 0.3     # a client's connection and slow start, before it is first stopped
QUIET_S = 0.002   # a stopped flow is drained once its server received nothing for this long
DRAIN_MAX_S = 2.0  # ... or after this long, whatever is still queued
STALLED_MAX_S = 1.0  # how long a turn that moved nothing is run again, before it fails


@dataclass(frozen=True)
class Flow:
    mode: str
    path: str
    client: object  # paths.Endpoint
    server: object


Turn = tuple[int, "Flow | None", dict]  # (cycle, the flow or None for bare, the turn's record)


def schedule(flows: list[Flow], cycles: int, first: int = 1) -> list[tuple[int, Flow | None]]:
    """[(cycle, flow or None for bare)]: bare before and after each flow's turn, the flows'
    order rotating from cycle to cycle; cycles are numbered from `first`."""
    out = []
    for c in range(first - 1, first - 1 + cycles):
        k = c % len(flows) if flows else 0
        for flow in flows[k:] + flows[:k]:
            out += [(c + 1, None), (c + 1, flow)]
    if out:
        out.append((out[-1][0], None))
    return out


def paired(turns: list[Turn], bare_flow: Flow, session: int | None = None) -> list[dict]:
    """Samples of a schedule's measured turns [(cycle, flow, metrics)]: every mode turn with
    the mean of the bare turns around it as `baseline`; `session` numbers the tool session
    they were measured in (compare.py takes sessions as its unit of replication)."""
    samples = []
    for i, (cycle, flow, metrics) in enumerate(turns):
        mode_flow = flow or bare_flow
        sample = {"repeat": cycle, "mode": mode_flow.mode, "path": mode_flow.path,
                  "client": mode_flow.client.name, "server": mode_flow.server.name,
                  "server_ip": mode_flow.server.ip, **metrics}
        if session is not None:
            sample["session"] = session
        if flow is not None and sample["ok"]:
            around = [turns[j][2] for j in (i - 1, i + 1)
                      if 0 <= j < len(turns) and turns[j][1] is None and turns[j][2]["ok"]]
            if around:
                keys = set.intersection(*(set(m["metrics"]) for m in around))
                sample["baseline"] = {k: sum(m["metrics"][k] for m in around) / len(around)
                                      for k in keys if isinstance(around[0]["metrics"][k],
                                                                  (int, float))}
        samples.append(sample)
    return samples


def _rx_bytes(pid: int, dev: str = "eth0") -> int:
    with open(f"/proc/{pid}/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == dev:
                return int(rest.split()[0])
    raise ToolError(f"no {dev} in the server's namespace")


class FlowSession:
    """A tool's session: a server and a client per flow, started together, used in turns.

    `cpus` is the session's placement: (client CPU, server CPU) for every flow, or None to
    leave it to the scheduler. All servers start first, then all clients, so that starting a
    session costs about one tool's start whatever the number of flows. A flow whose tool
    cannot start has its turns recorded as failed with the tool's message; the others go on.
    Subclasses start a server (_serve) and a client (_connect), finish starting (_started) and
    measure a turn (_measure)."""
    first_port = 0  # the first flow's; each flow takes the next (two flows may share a
    #                 server's namespace: the A/A pair)

    def __init__(self, flows: list[Flow], cpus: tuple[int, int] | None = None):
        self.flows = flows
        self.cpus = cpus
        self.servers, self.clients = {}, {}
        self.failed = {}  # flow -> the tool's message

    def prepare(self) -> None:
        """What must hold before any flow starts (raises ToolError)."""

    def pinned(self, argv: list[str], side: int) -> list[str]:
        """argv run on this session's CPU for `side` (0 client, 1 server)."""
        return pinned(self.cpus[side] if self.cpus else None, argv)

    def _each(self, step, flows):
        for flow in flows:
            if flow not in self.failed:
                try:
                    step(flow, self.first_port + self.flows.index(flow))
                except ToolError as e:
                    self.failed[flow] = str(e)

    def _listening(self, flow, port):
        if not wait_listening(flow.server.argv, port):
            raise ToolError(f"{type(self).__name__}: the server did not start in "
                            f"{flow.server.name}")

    def __enter__(self) -> "FlowSession":
        try:
            self.prepare()
            self._each(self._serve, self.flows)
            self._each(self._listening, self.flows)
            self._each(self._connect, self.flows)
            self._started()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _started(self):
        """After every client was started."""

    def turn(self, flow: Flow, seconds: float) -> dict:
        """One turn of `flow`: its metrics over `seconds`, and where its processes ran."""
        if flow in self.failed:
            return {"ok": False, "error": self.failed[flow], "metrics": {}}
        try:
            out = self._measure(flow, seconds)
        except ToolError as e:
            if self.clients[flow].poll() is not None:  # gone: its later turns fail alike
                self.failed[flow] = str(e)
            return {"ok": False, "error": str(e), "metrics": {}}
        out["placement"] = [last_cpu(self.clients[flow].pid), last_cpu(self.servers[flow].pid)]
        return out


ESTABLISHED = "01"  # the st column of /proc/net/tcp


def unacked_bytes(table: str, port: int) -> int:
    """Bytes the established TCP connections to remote `port` still hold unacknowledged
    (tx_queue of /proc/<pid>/net/tcp or tcp6: `table`'s text). Connections of earlier
    sessions' tools, closing or gone, are not counted."""
    total = 0
    for line in table.splitlines()[1:]:
        fields = line.split()
        if (len(fields) > 4 and fields[3] == ESTABLISHED
                and int(fields[2].rsplit(":", 1)[1], 16) == port):
            total += int(fields[4].split(":")[0], 16)
    return total


def _client_unacked(pid: int, port: int) -> int:
    total = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                total += unacked_bytes(f.read(), port)
        except OSError:
            pass
    return total


class SlicedIperf(FlowSession):
    """Long-running iperf3 clients, one per flow, let run one at a time."""
    first_port = iperf3.PORT

    def __init__(self, flows: list[Flow], streams: int, cpus: tuple[int, int] | None):
        super().__init__(flows, cpus)
        self.streams = streams

    def _serve(self, flow, port):
        subprocess.run(flow.client.argv(["sysctl", "-qw", "net.ipv4.tcp_slow_start_after_idle=0"]),
                       capture_output=True)
        self.servers[flow] = subprocess.Popen(flow.server.argv(self.pinned(
            ["iperf3", "-s", "-1", "-p", str(port)], 1)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _connect(self, flow, port):
        self.clients[flow] = subprocess.Popen(flow.client.argv(self.pinned(
            ["iperf3", "-c", flow.server.ip, "-p", str(port), "-t", "86400",
             "-P", str(self.streams)], 0)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)

    def _started(self):
        time.sleep(START_S)  # every client's connection and slow start, at once
        for flow, client in self.clients.items():
            if client.poll() is not None:
                self.failed.setdefault(flow, f"iperf3: {client.stderr.read().strip()[:200]}")
            else:
                os.kill(client.pid, signal.SIGSTOP)

    def _measure(self, flow, seconds):
        client, server = self.clients[flow], self.servers[flow]
        # A sender waiting out a retransmission timeout (200 ms at least, doubling with each
        # loss in a row: a slow userspace switch drops bursts) moves nothing in a short turn
        # though its path is sound: such a turn is run again, for up to STALLED_MAX_S.
        deadline = time.perf_counter() + STALLED_MAX_S
        while True:
            meter, rx0 = TurnMeter(), _rx_bytes(server.pid)
            os.kill(client.pid, signal.SIGCONT)
            started = time.perf_counter()
            time.sleep(seconds)
            os.kill(client.pid, signal.SIGSTOP)
            elapsed = time.perf_counter() - started
            time.sleep(SETTLE_S)
            moved = _rx_bytes(server.pid) - rx0
            if client.poll() is not None or moved > 0 or time.perf_counter() > deadline:
                break
        if client.poll() is not None or moved <= 0:
            raise ToolError("iperf3 client ended or moved nothing in its turn")
        out = meter.turn({"gbps": moved * 8 / elapsed / 1e9, "bytes": moved}, elapsed)
        out["metrics"]["cpu_s_per_gb"] = out["metrics"]["cpu_s"] / (moved / 1e9)
        port = self.first_port + self.flows.index(flow)
        out["metrics"]["drain_s"] = drain(lambda: _rx_bytes(server.pid),
                                          lambda: _client_unacked(client.pid, port))
        return out

    def __exit__(self, *exc: object) -> None:
        end_stopped(list(self.clients.values()) + list(self.servers.values()))


def drain(received: Callable[[], int], unacked: Callable[[], int] = lambda: 0,
          quiet_s: float = QUIET_S, limit_s: float = DRAIN_MAX_S,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], object] = time.sleep) -> float:
    """Wait until a stopped flow has delivered what it had queued: `received()` (its server's
    byte count) unchanged for quiet_s and nothing `unacked()` in the client's sockets; the
    seconds it took, at most limit_s.

    A stopped client's kernel still sends what its socket holds, and a slow datapath (a
    forwarder in user space, OVS's userspace datapath) still moves its queues, for up to a
    tenth of a second; the next turn, bare's, would share the CPUs with that and read low,
    and the flow after it in the schedule — always the same one — would read high. A quiet
    server alone is no proof: a sender waiting out a retransmission timeout is quiet too."""
    started = last_change = clock()
    last = received()
    while (clock() - last_change < quiet_s or unacked() > 0) and clock() - started < limit_s:
        sleep(quiet_s / 2)
        now = received()
        if now != last:
            last, last_change = now, clock()
    return clock() - started


def run_sliced(open_session: Callable[[list[Flow]], FlowSession], flows: Iterable[Flow],
               bare_flow: Flow, cycles: int, slice_s: float, turns: list[Turn],
               progress: Callable[[float], object] | None = None, first: int = 1) -> None:
    """One time-sliced session of the mode flows and the bare flow; `open_session(flows)`
    gives the tool's session (SlicedIperf, rrprobe.SlicedRR, ping.SlicedPing), with fresh
    processes. Turns are appended to `turns` as measured, so that an interrupted session keeps
    them; cycles are numbered from `first`."""
    with open_session([bare_flow] + list(flows)) as session:
        for cycle, flow in schedule(list(flows), cycles, first):
            turns.append((cycle, flow, session.turn(flow or bare_flow, slice_s)))
            if progress:
                progress(slice_s)


def run_sequential(flows: Iterable[Flow], bare_flow: Flow, cycles: int,
                   measure: Callable[[Flow], dict], turns: list[Turn],
                   progress: Callable[[float | None], object] | None = None) -> None:
    """A session of whole tool runs, `measure(flow)` -> sample fields each, into `turns`."""
    for cycle, flow in schedule(list(flows), cycles):
        turns.append((cycle, flow, measure(flow or bare_flow)))
        if progress:
            progress(None)
