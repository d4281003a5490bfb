"""Running a measuring tool as a server in one namespace and a client in another."""
import subprocess
from collections.abc import Callable

from testbed.host.waiting import wait_until

Wrap = Callable[[list[str]], list[str]]  # a command -> that command run in a namespace


class ToolError(Exception):
    """The tool failed; carries its own message. Such a sample is recorded as failed."""


def wait_listening(server_argv: Wrap, port: int, timeout: float = 5.0) -> bool:
    """Wait until something listens on `port` (TCP or UDP) in the server's namespace."""
    def listening() -> bool:
        return subprocess.run(server_argv(["ss", "-Hlnut", f"sport = :{port}"]),
                              capture_output=True, text=True).stdout.strip() != ""
    return wait_until(listening, timeout, 0.02)


def client_server(server_argv: Wrap, server_cmd: list[str], client_argv: Wrap,
                  client_cmd: list[str], port: int,
                  timeout: float) -> subprocess.CompletedProcess:
    """Start the server, run the client to completion, stop the server; the client's result."""
    # own sessions: a Ctrl-C at the terminal reaches the harness, which stops cleanly, and
    # not the tools, which would otherwise report the interruption as a result
    server = subprocess.Popen(server_argv(server_cmd), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if not wait_listening(server_argv, port):
            server.kill()
            _, err = server.communicate()
            raise ToolError(f"{server_cmd[0]} server did not start: {err.strip()[:200]}")
        try:
            return subprocess.run(client_argv(client_cmd), capture_output=True, text=True,
                                  timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise ToolError(f"{client_cmd[0]} did not finish within {timeout:.0f} s")
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()
