"""The one client for the testbed's control sockets (Unix sockets in the run directory).

Stream sockets carry JSON: one request line, then reply lines; a line {"progress": text} is
news of work still going on, any other line is the reply. The supervisor and the OpenFlow
controllers answer this way. The flannel udp forwarder, a C loop, takes one-line text commands
in datagrams instead (`datagram`).
"""
import json
import os
import socket
import time
from collections.abc import Callable


def request(path: str, message: dict, timeout: float = 5.0,
            progress: Callable[[str], None] | None = None,
            alive: Callable[[], bool] | None = None) -> dict:
    """Send `message`, return the reply. Each progress line goes to progress(text) and
    restarts the timeout; when the timeout runs out and alive() (the server still runs) says
    so, the wait goes on. Raises OSError when nobody answers, ValueError on a reply that is
    not JSON."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout if alive is None else min(timeout, 1.0))
        sock.connect(path)
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                if alive is not None and alive():
                    continue
                raise
            if not chunk:
                break
            data += chunk
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                reply = json.loads(line)
                if not (isinstance(reply, dict) and "progress" in reply):
                    return reply
                if progress:
                    progress(reply["progress"])
    return json.loads(data or b"{}")


def send_line(conn: socket.socket, message: dict) -> None:
    """One JSON line to a requester (server side); one who stopped listening does not stop
    the work."""
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def datagram(path: str, command: str, timeout: float = 2.0) -> str:
    """One text command to a datagram control socket; returns the one-line reply. The reply
    comes to a path of our own (not an abstract name: the server may be in another network
    namespace, which abstract names do not cross)."""
    reply_path = f"{path}.client-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(reply_path)
        try:
            sock.settimeout(timeout)
            sock.sendto(command.encode(), path)
            return sock.recv(4096).decode()
        finally:
            os.unlink(reply_path)
