"""sockperf ping-pong: request/response latency percentiles (sockperf reports RTT/2, in µs)."""
import re

from bench.tools.tool import ToolError, Wrap, client_server

PORT = 11111

PERCENTILE = re.compile(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)")
AVG = re.compile(r"avg-latency=([\d.]+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_pingpong(text: str) -> dict:
    """{'p50_us', 'p99_us', 'avg_us'} from a `sockperf ping-pong` run; ToolError otherwise.

    sockperf exits 0 even when it cannot connect, so a run without percentiles is a failure
    and its ERROR line is the message.
    """
    text = ANSI.sub("", text)
    found = {float(q): float(v) for q, v in PERCENTILE.findall(text)}
    avg = AVG.search(text)
    if 50.0 not in found or 99.0 not in found or not avg:
        errors = [line.split("ERROR:", 1)[1].strip() for line in text.splitlines()
                  if "ERROR:" in line]
        raise ToolError(f"sockperf: {errors[0] if errors else 'no latency percentiles in output'}")
    return {"p50_us": found[50.0], "p99_us": found[99.0], "avg_us": float(avg.group(1))}


def pingpong(server_argv: Wrap, client_argv: Wrap, server_ip: str, seconds: float,
             protocol: str = "tcp", msg_size: int = 64) -> dict:
    proto = ["--tcp"] if protocol == "tcp" else []
    proc = client_server(
        server_argv, ["sockperf", "server", *proto, "-i", server_ip, "-p", str(PORT)],
        client_argv, ["sockperf", "ping-pong", *proto, "-i", server_ip, "-p", str(PORT),
                      "-t", str(seconds), "-m", str(msg_size)],
        PORT, timeout=seconds + 30)
    return parse_pingpong(proc.stdout + proc.stderr)
