"""ping: ICMP round-trip times."""
import re
import subprocess

from .tool import ToolError
from .stats import percentile

RTT = re.compile(r"time=([\d.]+) ms")
SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


def parse_ping(text):
    """{'rtt_p50_ms', 'rtt_p99_ms', 'rtt_avg_ms', 'loss_pct'}; ToolError when nothing came back."""
    times = [float(t) for t in RTT.findall(text)]
    summary = SUMMARY.search(text)
    if not times:
        first = text.strip().splitlines()[0] if text.strip() else "no output"
        detail = summary.group(0) if summary else first
        raise ToolError(f"ping: no reply ({detail})")
    sent, received = (int(g) for g in summary.groups()) if summary else (len(times), len(times))
    return {"rtt_p50_ms": percentile(times, 50), "rtt_p99_ms": percentile(times, 99),
            "rtt_avg_ms": sum(times) / len(times),
            "loss_pct": 100.0 * (sent - received) / sent if sent else 0.0}


def icmp_rtt(client_argv, server_ip, count=50, interval=0.01):
    proc = subprocess.run(client_argv(["ping", "-c", str(count), "-i", str(interval), "-W", "2",
                                       server_ip]),
                          capture_output=True, text=True, timeout=count * interval + 30,
                          start_new_session=True)
    return parse_ping(proc.stdout + proc.stderr)
