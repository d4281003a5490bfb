"""The probe: one TCP connection attempt, UDP datagram or ICMP echo from a port (or echo
identifier) chosen for it, so that every sighting of it and of its answer can be told from
other traffic. It runs as a small program inside the source's namespace and prints one JSON
line: what came back. An IPv6 destination takes IPv6 sockets (ICMPv6 echo, whose checksum the
kernel computes)."""
import json
import random
import sys

PORTS = (33000, 60999)   # below Linux's ephemeral range start (32768..60999 overlaps: fine)
TIMEOUT_S = 1.0

# run with `python3 -S -c PROGRAM protocol dst port sport`
PROGRAM = r"""
import json, socket, struct, sys, time
protocol, dst, port, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
timeout = float(sys.argv[5])
out = {}
start = time.monotonic()
family = socket.AF_INET6 if ":" in dst else socket.AF_INET
try:
    if protocol == "tcp":
        s = socket.socket(family)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", sport))
        s.settimeout(timeout)
        try:
            s.connect((dst, port))
            out["result"] = "connected"
        except ConnectionRefusedError:
            out["result"] = "refused"
        except (socket.timeout, TimeoutError):
            out["result"] = "timeout"
        except OSError as e:
            out["result"] = "error: " + (e.strerror or str(e))
    elif protocol == "udp":
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind(("", sport))
        s.settimeout(timeout)
        s.connect((dst, port))  # connected: an ICMP error comes back as the socket's error
        s.send(b"testbed trace\n")
        try:
            s.recv(2048)
            out["result"] = "answered"
        except ConnectionRefusedError:
            out["result"] = "refused"
        except (socket.timeout, TimeoutError):
            out["result"] = "no answer"
        except OSError as e:
            out["result"] = "error: " + (e.strerror or str(e))
    else:
        v6 = family == socket.AF_INET6
        s = socket.socket(family, socket.SOCK_RAW,
                          socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
        s.settimeout(timeout)
        # echo request (ICMPv6 128, ICMP 8); ICMPv6's checksum is the kernel's to fill
        body = struct.pack(">BBHHH", 128 if v6 else 8, 0, 0, sport, 1) + b"testbed trace"
        padded = body + b"\0" * (len(body) % 2)
        total = sum(struct.unpack(">%dH" % (len(padded) // 2), padded))
        total = (total >> 16) + (total & 0xFFFF)
        total += total >> 16
        if not v6:
            body = body[:2] + struct.pack(">H", ~total & 0xFFFF) + body[4:]
        s.sendto(body, (dst, 0))
        out["result"] = "no answer"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data, peer = s.recvfrom(2048)
            except (socket.timeout, TimeoutError):
                break
            ihl = 0 if v6 else (data[0] & 15) * 4  # a raw IPv6 socket gets no IP header
            kind = data[ihl]
            if kind == (129 if v6 else 0) and \
                    struct.unpack(">H", data[ihl + 4:ihl + 6])[0] == sport:
                out["result"] = "answered"
                break
            if kind in ((1, 3) if v6 else (3, 11)):
                out["result"] = "icmp error from " + peer[0]
                break
except OSError as e:
    out["result"] = "error: " + (e.strerror or str(e))
out["seconds"] = round(time.monotonic() - start, 4)
print(json.dumps(out))
"""


def choose_port() -> int:
    return random.randint(*PORTS)


def argv(protocol: str, dst: str, port: int, sport: int, timeout: float = TIMEOUT_S) -> list:
    """The probe's command line (run it inside the source's namespace)."""
    return [sys.executable, "-S", "-c", PROGRAM, protocol, dst, str(port), str(sport),
            str(timeout)]


def result(stdout: str) -> dict:
    """What the probe printed: {"result": ..., "seconds": ...}."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"result": "the probe printed nothing", "seconds": 0.0}
