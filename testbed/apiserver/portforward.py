"""pods/portforward as kubectl 1.31+ speaks it: a WebSocket with the subprotocol
`SPDY/3.1+portforward.k8s.io`, whose binary messages carry SPDY frames (spdy.py), exactly as
kube-apiserver's tunnelling handler passes them to the kubelet.

For every local connection kubectl opens two streams with the same `requestID`: an error stream
(`streamType: error`) and a data stream (`streamType: data`), both naming the pod's `port`. As
the kubelet does, each pair becomes one TCP connection to localhost:port inside the pod's
network namespace; bytes go both ways until either side is done, and what went wrong is written
on the error stream, which kubectl prints. The socket is made in the pod's namespace
(host/netns.socket_in), so the connection never leaves the emulation.
"""
import asyncio
import contextlib
import os

from aiohttp import WSMsgType, web

from testbed.host import netns
from testbed.model.state import RunState

from . import spdy
from .status import ApiError

TUNNEL = "SPDY/3.1+portforward.k8s.io"
CONNECT_TIMEOUT_S = 5.0
CHUNK = 32 * 1024


async def portforward_pod(request: web.Request, run_dir: str, namespace: str,
                          name: str) -> web.StreamResponse:
    record = RunState.load(run_dir).pods.get(f"{namespace}/{name}") if run_dir else None
    if record is None:
        raise ApiError(400, f"unable to upgrade connection: pod {name} has no sandbox")
    ws = web.WebSocketResponse(protocols=(TUNNEL,), max_msg_size=0, compress=False)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "unable to upgrade: no tunneling spdy protocols provided")
    await ws.prepare(request)
    await Tunnel(ws, netns.netns_path(record.netns), f"{namespace}/{name}").run()
    return ws


class Tunnel:
    """One kubectl port-forward session: SPDY streams in, pod connections out."""

    def __init__(self, ws: web.WebSocketResponse, netns_path: str, pod: str):
        self.ws, self.netns_path, self.pod = ws, netns_path, pod
        self.codec = spdy.HeaderCodec()
        self.parser = spdy.Parser(self.codec)
        self.pairs: dict[str, dict] = {}  # requestID -> {"error": id, "data": id, "port": p}
        self.inbound: dict[int, asyncio.Queue] = {}  # data stream -> client bytes, None at FIN
        self.tasks: dict[str, asyncio.Task] = {}
        self.last_stream = 0
        self._sending = asyncio.Lock()

    async def send(self, frame: bytes) -> None:
        async with self._sending:
            if not self.ws.closed:
                await self.ws.send_bytes(frame)

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                for frame in self.parser.feed(msg.data):
                    if not await self.handle(frame):
                        return
        except spdy.ProtocolError:
            await self.send(spdy.goaway(self.last_stream, spdy.RST_PROTOCOL_ERROR))
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            await self.ws.close()

    async def handle(self, frame: spdy.Frame) -> bool:
        """One frame from kubectl; False when the session is over."""
        if frame.kind is None:
            queue = self.inbound.get(frame.stream_id)
            if queue is not None:
                if frame.data:
                    queue.put_nowait(frame.data)
                if frame.fin:
                    queue.put_nowait(None)
        elif frame.kind == spdy.SYN_STREAM:
            await self.open_stream(frame)
        elif frame.kind == spdy.RST_STREAM:
            for request_id, pair in self.pairs.items():
                if frame.stream_id in (pair.get("data"), pair.get("error")) and \
                        request_id in self.tasks:
                    self.tasks[request_id].cancel()
        elif frame.kind == spdy.PING:
            await self.send(spdy.ping(frame.value))
        elif frame.kind == spdy.GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do here

    async def open_stream(self, frame: spdy.Frame) -> None:
        stream_id, headers = frame.stream_id, frame.headers
        self.last_stream = max(self.last_stream, stream_id)
        kind = headers.get("streamtype")
        if kind not in ("error", "data"):
            await self.send(spdy.rst_stream(stream_id, spdy.RST_PROTOCOL_ERROR))
            return
        await self.send(spdy.syn_reply(self.codec, stream_id))
        # without a requestID (clients before 1.6) an error stream and the data stream
        # after it pair by their IDs, as the kubelet pairs them
        request_id = headers.get("requestid") or \
            str(stream_id if kind == "error" else stream_id - 2)
        pair = self.pairs.setdefault(request_id, {})
        pair[kind], pair["port"] = stream_id, headers.get("port", "")
        if kind == "data":
            self.inbound[stream_id] = asyncio.Queue()
        if "error" in pair and "data" in pair and request_id not in self.tasks:
            self.tasks[request_id] = asyncio.ensure_future(self.forward(pair))

    async def _fail(self, pair: dict, message: str) -> None:
        await self.send(spdy.data_frame(pair["error"], message.encode()))
        await self.send(spdy.data_frame(pair["error"], fin=True))
        await self.send(spdy.data_frame(pair["data"], fin=True))

    async def forward(self, pair: dict) -> None:
        port = pair["port"]
        try:
            number = int(port)
            if not 0 < number < 65536:
                raise ValueError
        except ValueError:
            await self._fail(pair, f"invalid port: {port!r}")
            return
        loop = asyncio.get_running_loop()
        try:
            sock = netns.socket_in(self.netns_path)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", number)),
                                       CONNECT_TIMEOUT_S)
            except BaseException:
                sock.close()
                raise
            reader, writer = await asyncio.open_connection(sock=sock)
        except (OSError, asyncio.TimeoutError) as e:
            reason = os.strerror(e.errno) if getattr(e, "errno", None) else "i/o timeout"
            await self._fail(pair, f"error forwarding port {number} to pod {self.pod}, uid : "
                             f"failed to connect to localhost:{number} inside the pod's "
                             f"network namespace: dial tcp4 127.0.0.1:{number}: connect: "
                             f"{reason.lower()}")
            return
        upstream = asyncio.ensure_future(self._to_pod(self.inbound[pair["data"]], writer))
        try:
            while data := await reader.read(CHUNK):
                await self.send(spdy.data_frame(pair["data"], data))
            await self.send(spdy.data_frame(pair["data"], fin=True))
            await self.send(spdy.data_frame(pair["error"], fin=True))
        except (OSError, ConnectionError):
            await self._fail(pair, f"error forwarding port {number} to pod {self.pod}: "
                             "the connection in the pod was reset")
        finally:
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await upstream
            writer.close()

    @staticmethod
    async def _to_pod(queue: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        while (data := await queue.get()) is not None:
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # kubectl's side is done sending: half-close, as the kubelet does
