"""pods/exec and pods/attach over WebSocket, as kubectl 1.30+ speaks them (the
`v5.channel.k8s.io` subprotocol, and v4 before it): every binary message starts with its
channel — 0 stdin, 1 stdout,
2 stderr, 3 the error channel (the command's end, as a Status), 4 terminal resize (JSON
Width and Height), 255 a stream closed by the client (v5). With `tty`, the command runs on a
pseudo-terminal, stdout and stderr merged as a terminal merges them.

The command runs in the pod's sandbox (kubelet/exec.py), found in the run's state; the API
server started it, so it ends it by its PID if the client goes first.
"""
import asyncio
import fcntl
import json
import os
import pty
import struct
import termios
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from testbed.kubelet.exec import exec_argv
from testbed.model.state import RunState

from .status import ApiError

OUTPUT_AFTER_EXIT_S = 2.0
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def exit_status(code: int) -> dict:
    """The error channel's last word: Success, or the exit code as kubectl reads it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[...], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _controlling_terminal():
    """In the child: a session of its own, with its pseudo-terminal as controlling terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def resize(fd: int, payload: bytes) -> None:
    try:
        size = json.loads(payload)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(size["Height"]),
                                                       int(size["Width"]), 0, 0))
    except (ValueError, KeyError, TypeError, OSError):
        pass  # a resize that cannot be read changes nothing


async def exec_pod(request: web.Request, run_dir: str, namespace: str, name: str,
                   pod: dict) -> web.StreamResponse:
    query = request.query
    command = query.getall("command", [])
    if not command:
        raise ApiError(400, "you must specify at least one command for the container")
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    container = query.get("container") or (names[0] if names else "")
    if container not in names:
        raise ApiError(400, f"container {container} is not valid for pod {name}")
    record = RunState.load(run_dir).pods.get(f"{namespace}/{name}") if run_dir else None
    if record is None or container not in record.containers:
        raise ApiError(400, f'unable to upgrade connection: container not found ("{container}")')
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "Upgrade request required")
    await ws.prepare(request)
    tty = query.get("tty") in ("true", "1")
    stdin = query.get("stdin") in ("true", "1")
    argv = exec_argv(record, command)
    await Session(ws, argv, tty, stdin).run()
    return ws


OUTPUT_POLL_S = 0.2  # how often a followed container's output is read again


async def appended(path: str, position: int) -> AsyncIterator[bytes]:
    """What is written to a container's output file after `position`, read every
    OUTPUT_POLL_S (b"" when nothing came), until the file goes with its pod."""
    while os.path.exists(path):
        with open(path, "rb") as f:
            f.seek(position)
            more = f.read()
        position += len(more)
        yield more
        await asyncio.sleep(OUTPUT_POLL_S)


async def attach_pod(request: web.Request, output: str) -> web.StreamResponse:
    """pods/attach (`kubectl attach`): what the container writes from now on, on the stdout
    channel, until the client goes or the container's output does. A container here reads
    no stdin (its stdin is /dev/null, as a container without `stdin: true`), so what the
    client sends is dropped, as the kubelet drops it."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "Upgrade request required")
    await ws.prepare(request)
    reader = asyncio.ensure_future(_drain(ws))
    try:
        async for more in appended(output, os.path.getsize(output)):
            if reader.done():
                break
            if more:
                await ws.send_bytes(bytes([STDOUT]) + more)
        if not reader.done():  # the container's output is gone: so is the container
            await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(0)).encode())
    except ConnectionResetError:
        pass
    finally:
        reader.cancel()
        await ws.close()
    return ws


async def _drain(ws) -> None:
    async for _msg in ws:
        pass


class Session:
    def __init__(self, ws: web.WebSocketResponse, argv: list[str], tty: bool, stdin: bool):
        self.ws, self.argv, self.tty, self.stdin = ws, argv, tty, stdin
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None

    async def send(self, channel: int, data: bytes) -> None:
        if data and not self.ws.closed:
            await self.ws.send_bytes(bytes([channel]) + data)

    async def run(self) -> None:
        try:
            await self._start()
        except OSError as e:
            await self.send(ERROR, json.dumps({
                "metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": f"failed to run {self.argv[-1]}: {e.strerror}"}).encode())
            await self.ws.close()
            return
        pumps = [asyncio.ensure_future(p) for p in self._pumps()]
        reader = asyncio.ensure_future(self._read_client())
        try:
            code = await self.proc.wait()
            # what the command wrote last; a child it left behind may hold its output open
            await asyncio.wait(pumps, timeout=OUTPUT_AFTER_EXIT_S)
            await self.send(ERROR, json.dumps(exit_status(code)).encode())
        finally:
            reader.cancel()
            for pump in pumps:
                pump.cancel()
            if self.proc.returncode is None:  # the client went first
                self.proc.kill()
                await self.proc.wait()
            if self.master is not None:
                os.close(self.master)
            await self.ws.close()

    async def _start(self) -> None:
        if self.tty:
            self.master, child = pty.openpty()
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.argv, stdin=child, stdout=child, stderr=child,
                    preexec_fn=_controlling_terminal)
            finally:
                os.close(child)
        else:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE if self.stdin else
                asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)

    def _pumps(self):
        if self.tty:
            return [self._pump_terminal()]
        return [self._pump(self.proc.stdout, STDOUT), self._pump(self.proc.stderr, STDERR)]

    async def _pump(self, stream, channel) -> None:
        while True:
            data = await stream.read(65536)
            if not data:
                return
            await self.send(channel, data)

    async def _pump_terminal(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.run_in_executor(None, os.read, self.master, 65536)
            except OSError:  # EIO: the terminal's last process is gone
                return
            if not data:
                return
            await self.send(STDOUT, data)

    async def _read_client(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel == STDIN and payload:
                if self.tty:
                    os.write(self.master, payload)
                elif self.proc.stdin is not None:
                    self.proc.stdin.write(payload)
                    await self.proc.stdin.drain()
            elif channel == RESIZE and self.tty:
                resize(self.master, payload)
            elif channel == CLOSE and payload[:1] == bytes([STDIN]):
                if self.tty:
                    os.write(self.master, b"\x04")  # end of input, as a terminal sends it
                elif self.proc.stdin is not None:
                    self.proc.stdin.close()
