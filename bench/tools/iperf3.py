"""iperf3: TCP and UDP throughput between two namespaces, from its JSON output."""
import json

from bench.tools.tool import ToolError, Wrap, client_server

PORT = 5201


def _load(text):
    try:
        doc = json.loads(text)
    except ValueError:
        raise ToolError(f"iperf3 printed no JSON: {text.strip()[:200]!r}")
    if doc.get("error"):
        raise ToolError(f"iperf3: {doc['error']}")
    return doc


def parse_tcp_json(text: str) -> dict:
    """{'gbps', 'bytes', 'retransmits'} of an `iperf3 -J` TCP run (receiver side)."""
    doc = _load(text)
    try:
        received = doc["end"]["sum_received"]
        return {"gbps": received["bits_per_second"] / 1e9, "bytes": received["bytes"],
                "retransmits": doc["end"].get("sum_sent", {}).get("retransmits")}
    except (KeyError, TypeError):
        raise ToolError("iperf3 JSON has no end.sum_received")


def parse_udp_json(text: str) -> dict:
    """{'gbps', 'bytes', 'loss_pct', 'jitter_ms'} of an `iperf3 -u -J` run (receiver side)."""
    doc = _load(text)
    try:
        total = doc["end"]["sum"]
        received = doc["end"].get("sum_received", total)
        return {"gbps": received["bits_per_second"] / 1e9, "bytes": received["bytes"],
                "loss_pct": float(total["lost_percent"]), "jitter_ms": float(total["jitter_ms"])}
    except (KeyError, TypeError):
        raise ToolError("iperf3 JSON has no end.sum")


def _pinning(cpus):
    """(client args, server args): client and server on separate cores, so that placement by
    the scheduler (both on one core, or not) does not split samples into two populations."""
    if not cpus:
        return [], []
    client_cpu, server_cpu = cpus
    return ["-A", str(client_cpu)], ["-A", str(server_cpu)]


def _run(server_argv, client_argv, server_ip, seconds, omit, cpus, extra):
    pin_client, pin_server = _pinning(cpus)
    proc = client_server(
        server_argv, ["iperf3", "-s", "-1", "-p", str(PORT), *pin_server],
        client_argv, ["iperf3", "-c", server_ip, "-p", str(PORT), "-J", "-t", str(seconds),
                      "-O", str(omit), *extra, *pin_client],
        PORT, timeout=seconds + omit + 30)
    return proc.stdout or proc.stderr


def tcp(server_argv: Wrap, client_argv: Wrap, server_ip: str, seconds: float,
        streams: int = 1, omit: int = 1, cpus: tuple[int, int] | None = None) -> dict:
    """`omit` seconds of slow start are run first and left out of the result (iperf3 -O)."""
    return parse_tcp_json(_run(server_argv, client_argv, server_ip, seconds, omit, cpus,
                               ["-P", str(streams)]))


def udp(server_argv: Wrap, client_argv: Wrap, server_ip: str, seconds: float,
        rate: str, datagram: int, omit: int = 1, cpus: tuple[int, int] | None = None) -> dict:
    return parse_udp_json(_run(server_argv, client_argv, server_ip, seconds, omit, cpus,
                               ["-u", "-b", str(rate), "-l", str(datagram)]))
