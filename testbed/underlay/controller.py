"""The os-ken controller process of a cluster: started with the apps it should run, answering
requests (counters, cluster updates) on a Unix socket, reached by switches on another (no TCP
port anywhere)."""
import os
import sys
from typing import Any

from testbed.errors import TestbedError
from testbed.host import rpc
from testbed.host.daemons import Daemon, DaemonRecord, Ledger

READY_TIMEOUT_S = 20.0  # os-ken's imports take a few seconds on a busy machine


def request(path: str, op: str, timeout: float = 5.0, **fields: object) -> Any:
    """One request to a controller's control socket; its reply, or TestbedError."""
    reply = rpc.request(path, {"op": op, **fields}, timeout)
    if isinstance(reply, dict) and "error" in reply:
        raise TestbedError(f"controller refused {op}: {reply['error']}")
    return reply


def read_stats(path: str) -> dict:
    """A controller's counters: {"pid", "packet_in", "switches": {dpid: {...}}}."""
    return request(path, "stats")


class ControllerProcess:
    def __init__(self, label: str, apps: list[str], run_dir: str):
        self.label = label
        self.apps = apps
        self.dir = run_dir
        self.ofp_socket = os.path.join(run_dir, "openflow.sock")
        self.control_socket = os.path.join(run_dir, "control.sock")
        self.log = os.path.join(run_dir, "controller.log")
        self.daemon: Daemon | None = None

    @property
    def pid(self) -> int | None:
        return self.daemon.pid if self.daemon else None

    def start(self, state: Ledger) -> None:
        os.makedirs(self.dir, exist_ok=True)
        argv = [sys.executable, "-W", "ignore", "-m", "controllers.launch",
                "--ofp-socket", self.ofp_socket, "--control-socket", self.control_socket]
        for app in self.apps:
            argv += ["--app", app]
        self.daemon = Daemon(self.label, argv, self.log)
        try:
            self.daemon.start(state, self._answers, READY_TIMEOUT_S)
        except TestbedError as e:
            raise TestbedError(f"the OpenFlow controller could not start: {e} "
                               f"(log: {self.log})") from None

    def _answers(self) -> bool:
        try:
            self.stats()
            return os.path.exists(self.ofp_socket)
        except (OSError, ValueError):
            return False

    def stats(self) -> dict:
        return read_stats(self.control_socket)

    def request(self, op: str, **fields: object) -> Any:
        return request(self.control_socket, op, **fields)

    def status(self) -> DaemonRecord:
        return self.daemon.status("-") if self.daemon else DaemonRecord("-", None, False,
                                                                         "not started")

    def stop(self, state: Ledger) -> None:
        if self.daemon is not None:
            self.daemon.stop(state)
