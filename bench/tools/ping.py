"""ping: ICMP round-trip times of time-sliced turns."""
import os
import re
import signal
import subprocess
import time

from bench.engine.cpu import TurnMeter, end_stopped, last_cpu, pinned
from bench.engine.slicing import Flow
from bench.engine.stats import rounded_percentile
from bench.tools.tool import ToolError

RTT = re.compile(r"time=(\d+)(?:\.(\d+))? ms")
SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


def parse_ping(text: str) -> dict:
    """{'rtt_p50_ms', 'rtt_p99_ms', 'rtt_avg_ms', 'loss_pct'}; ToolError when nothing came back."""
    # ping rounds: to the µs under 1 ms, then 10 µs, 100 µs, 1 ms (each value's own step)
    rounded = [(float(f"{whole}.{frac or 0}"), 10.0 ** -len(frac)) for whole, frac in
               RTT.findall(text)]
    times = [value for value, _step in rounded]
    summary = SUMMARY.search(text)
    if not times:
        first = text.strip().splitlines()[0] if text.strip() else "no output"
        detail = summary.group(0) if summary else first
        raise ToolError(f"ping: no reply ({detail})")
    sent, received = (int(g) for g in summary.groups()) if summary else (len(times), len(times))
    return {"rtt_p50_ms": rounded_percentile(rounded, 50),
            "rtt_p99_ms": rounded_percentile(rounded, 99),
            "rtt_avg_ms": sum(times) / len(times),
            "loss_pct": 100.0 * (sent - received) / sent if sent else 0.0}


SLICED_INTERVAL_S = 0.001  # about a hundred echoes in a turn of a tenth of a second
SETTLE_S = 0.002  # after a stop, for the last replies to arrive (the kernel stamps them)


class SlicedPing:
    """One ping per flow for the whole session, stopped (SIGSTOP) outside its turns.

    A turn's round trips are the reply lines ping printed during it. An echo in flight when
    ping is stopped still gets the right time: ping takes it from the kernel's receive stamp,
    not from when it reads the reply.
    """

    def __init__(self, flows: list[Flow], cpus: tuple[int, int] | None = None):
        self.flows = flows
        self.cpus = cpus  # (client CPU, server CPU): ping runs on the client's
        self.pings = {}

    def __enter__(self):
        try:
            client_cpu = self.cpus[0] if self.cpus else None
            for flow in self.flows:
                proc = subprocess.Popen(
                    flow.client.argv(pinned(client_cpu, [
                        "ping", "-n", "-i", str(SLICED_INTERVAL_S), "-W", "1", flow.server.ip])),
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
                os.set_blocking(proc.stdout.fileno(), False)
                self.pings[flow] = proc
                os.kill(proc.pid, signal.SIGSTOP)
                _drain(proc)  # its header line, and any reply before the stop
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def turn(self, flow: Flow, seconds: float) -> dict:
        """One turn of `flow`: the round trips of the echoes answered in `seconds`."""
        proc = self.pings[flow]
        meter = TurnMeter()
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(seconds)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(SETTLE_S)
        text = _drain(proc)
        try:
            metrics = parse_ping(text)
        except ToolError as e:
            return {"ok": False, "error": str(e), "metrics": {}}
        metrics.pop("loss_pct")  # a turn cannot tell a lost echo from one still in flight
        metrics["replies"] = len(RTT.findall(text))
        out = meter.turn(metrics, seconds)
        out["placement"] = [last_cpu(proc.pid), None]
        return out

    def __exit__(self, *exc):
        end_stopped(self.pings.values())
        for proc in self.pings.values():
            proc.stdout.close()


def _drain(proc):
    """What ping wrote since the last call (its pipe is non-blocking)."""
    chunks = []
    while True:
        try:
            chunk = os.read(proc.stdout.fileno(), 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
