"""The proxy of kube-proxy's userspace mode, as the old proxier was (pkg/proxy/userspace): one
Portal per Service port, listening on a port the kernel picks. A TCP connection is accepted,
an endpoint chosen (LoadBalancerRR: round-robin, or the endpoint the client had within the
affinity timeout with sessionAffinity ClientIP; an endpoint that refuses is skipped, as
tryConnect does) and the bytes copied both ways over a connection of the proxy's own. A UDP
datagram goes out on a socket per client, whose replies come back until it has been idle
for kube-proxy's --udp-timeout (250 ms). Threads do the copying; this process is the
slow path the guides warn about, and bench/studies/services.py measures how slow.
"""
import socket
import threading
import time
from collections.abc import Collection

UDP_IDLE_S = 0.25      # kube-proxy's --udp-timeout default
CONNECT_TIMEOUT_S = 1.0
BUFFER = 65536


class Balancer:
    """LoadBalancerRR: endpoints in turn; with affinity, a client keeps its endpoint while it
    comes back within the timeout."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.endpoints: list[tuple[str, int]] = []
        self.affinity_s = 0
        self.next = 0
        # client ip -> (endpoint, last seen)
        self.clients: dict[str, tuple[tuple[str, int], float]] = {}

    def update(self, endpoints: list[tuple[str, int]], affinity_s: int) -> None:
        with self.lock:
            if endpoints != self.endpoints:
                self.endpoints, self.next = list(endpoints), 0
                self.clients = {c: v for c, v in self.clients.items() if v[0] in endpoints}
            self.affinity_s = affinity_s

    def pick(self, client_ip: str,
             skip: Collection[tuple[str, int]] = ()) -> tuple[str, int] | None:
        with self.lock:
            now = time.monotonic()
            if self.affinity_s:
                held = self.clients.get(client_ip)
                if held and held[0] not in skip and now - held[1] < self.affinity_s:
                    self.clients[client_ip] = (held[0], now)
                    return held[0]
            choices = [ep for ep in self.endpoints if ep not in skip]
            if not choices:
                return None
            endpoint = choices[self.next % len(choices)]
            self.next += 1
            if self.affinity_s:
                self.clients[client_ip] = (endpoint, now)
            return endpoint


class Portal:
    """One Service port's listener on the node, and what it proxies."""

    def __init__(self, name: str, protocol: str, address: str):
        self.name, self.protocol = name, protocol
        self.balancer = Balancer()
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.served = 0
        if protocol == "tcp":
            self.sock.listen(128)
            target = self.accept_loop
        else:
            self.sessions = {}  # client address -> socket to its endpoint
            target = self.datagram_loop
        threading.Thread(target=target, daemon=True).start()

    def update(self, endpoints: list[tuple[str, int]], affinity_s: int) -> None:
        self.balancer.update(endpoints, affinity_s)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def stats(self) -> dict:
        return {"port": self.port, "protocol": self.protocol, "served": self.served,
                "endpoints": [f"{ip}:{port}" for ip, port in self.balancer.endpoints]}

    # --- TCP -----------------------------------------------------------------------------
    def accept_loop(self) -> None:
        while not self.closed:
            try:
                conn, client = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.proxy_tcp, args=(conn, client[0]), daemon=True).start()

    def proxy_tcp(self, conn: socket.socket, client_ip: str) -> None:
        tried = []
        while True:
            endpoint = self.balancer.pick(client_ip, tried)
            if endpoint is None:  # no endpoint (left): the client's connection is closed
                conn.close()
                return
            try:
                out = socket.create_connection(endpoint, timeout=CONNECT_TIMEOUT_S)
                break
            except OSError:
                tried.append(endpoint)
        out.settimeout(None)
        self.served += 1
        back = threading.Thread(target=_copy, args=(out, conn), daemon=True)
        back.start()
        _copy(conn, out)
        back.join()
        conn.close()
        out.close()

    # --- UDP -----------------------------------------------------------------------------
    def datagram_loop(self) -> None:
        while not self.closed:
            try:
                data, client = self.sock.recvfrom(BUFFER)
            except OSError:
                return
            session = self.sessions.get(client)
            if session is None:
                endpoint = self.balancer.pick(client[0])
                if endpoint is None:
                    continue
                session = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                session.connect(endpoint)
                session.settimeout(UDP_IDLE_S)
                self.sessions[client] = session
                self.served += 1
                threading.Thread(target=self.replies, args=(session, client),
                                 daemon=True).start()
            try:
                session.send(data)
            except OSError:
                pass

    def replies(self, session: socket.socket, client: tuple[str, int]) -> None:
        try:
            while True:
                self.sock.sendto(session.recv(BUFFER), client)
        except OSError:  # idle for UDP_IDLE_S, or the portal closed
            pass
        finally:
            self.sessions.pop(client, None)
            session.close()


def _copy(src, dst):
    """Bytes from src to dst until src ends; then dst's sending side is closed."""
    try:
        while True:
            data = src.recv(BUFFER)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
