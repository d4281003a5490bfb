"""iperf3 as a measuring tool: run a server/client pair in two namespaces, parse its JSON."""
import json
import subprocess
import time


class ToolError(Exception):
    """The tool failed; carries its own message."""


def parse_tcp_json(text):
    """Received bits per second of an `iperf3 -J` TCP run; ToolError with iperf3's message."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise ToolError(f"iperf3 printed no JSON: {text.strip()[:200]!r}")
    if doc.get("error"):
        raise ToolError(f"iperf3: {doc['error']}")
    try:
        return float(doc["end"]["sum_received"]["bits_per_second"])
    except (KeyError, TypeError):
        raise ToolError("iperf3 JSON has no end.sum_received.bits_per_second")


def tcp_throughput(server_argv, client_argv, server_ip, seconds=5, streams=1, port=5201):
    """Bits/s from the client's namespace to the server's. *_argv wrap a command into a namespace."""
    server = subprocess.Popen(server_argv(["iperf3", "-s", "-1", "-p", str(port)]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # let the server bind before the client connects
        proc = subprocess.run(client_argv(["iperf3", "-c", server_ip, "-p", str(port), "-J",
                                           "-t", str(seconds), "-P", str(streams)]),
                              capture_output=True, text=True, timeout=seconds + 30)
        return parse_tcp_json(proc.stdout or proc.stderr)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
