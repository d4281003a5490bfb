"""A mode's long-running process (a udp forwarder, a BIRD): started in a namespace, owned by
its PID in the run's state, watched, stopped."""
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from testbed.errors import TestbedError
from testbed.host.processes import describe_exit, pid_is, process_start_time, terminate
from testbed.host.waiting import wait_until


class Ledger(Protocol):
    """Where a daemon records the process it starts, so that a teardown finds it: the run's
    state (model.state.RunState)."""
    owned: Any

    def own_pid(self, pid: int, what: str) -> object: ...

    def disown_pid(self, pid: int) -> None: ...


@dataclass
class DaemonRecord:
    """A daemon of the mode or the fabric, as last checked."""
    node: str
    pid: int | None
    alive: bool
    state: str


class Daemon:
    def __init__(self, label: str, argv: list[str], output_path: str):
        self.label = label            # also what the state file says the PID is
        self.argv = argv              # already wrapped to run in its namespace
        self.output_path = output_path
        self.proc: subprocess.Popen | None = None
        # (pid, start) of a daemon another owner started
        self.taken_over: tuple[int, int] | None = None

    @property
    def pid(self) -> int | None:
        if self.taken_over:
            return self.taken_over[0]
        return self.proc.pid if self.proc else None

    def take_over(self, state: Ledger) -> None:
        """Own the daemon of this label that the run recorded (a dead owner started it)."""
        entry = next((e for e in state.owned.pids if e.what == self.label), None)
        if entry is None:
            raise TestbedError(f"{self.label}: no record of it in the run's state")
        self.taken_over = (entry.pid, entry.start)

    def start(self, state: Ledger, ready: Callable[[], bool], timeout: float) -> None:
        """Start, then wait until ready() is true; a death or a timeout is a TestbedError."""
        with open(self.output_path, "ab") as out:
            proc = self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                                stdout=out, stderr=out, start_new_session=True)
        state.own_pid(proc.pid, self.label)
        def still_running() -> None:
            if proc.poll() is not None:
                raise TestbedError(f"{self.label} {describe_exit(proc.returncode)} at "
                                   f"start: {self._last_output()} (output: {self.output_path})")

        if not wait_until(ready, timeout, 0.02, check=still_running):
            raise TestbedError(f"{self.label} did not answer within {timeout:.0f} s")

    def _last_output(self) -> str:
        try:
            lines = open(self.output_path, errors="replace").read().strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else "no output"

    def stop(self, state: Ledger) -> None:
        """Stop it if it still runs, reap it and forget its PID; nothing if never started."""
        if self.taken_over:
            terminate(*self.taken_over)
            state.disown_pid(self.taken_over[0])
            self.taken_over = None
            return
        if self.proc is None:
            return
        if self.proc.poll() is None:
            terminate(self.proc.pid, process_start_time(self.proc.pid))
        self.proc.wait()
        state.disown_pid(self.proc.pid)
        self.proc = None

    def status(self, node: str) -> DaemonRecord:
        if self.taken_over:
            alive = pid_is(*self.taken_over)
            return DaemonRecord(node, self.pid, alive, "running" if alive else
                                "ended (taken over from a dead owner, its exit status unknown)")
        code = self.proc.poll() if self.proc else -1
        return DaemonRecord(node, self.pid, self.proc is not None and code is None,
                            describe_exit(code))


def describe_death(label: str, info: DaemonRecord, restart_command: str) -> str:
    """One line on a dead daemon and what its death means for traffic."""
    if label.startswith("controller@"):
        effect = "the flows it installed keep forwarding; nothing new is learned or installed"
    elif label.startswith(("kube-proxy@", "cilium-agent@")):
        effect = (f"its rules keep forwarding; health checks and /healthz on {info.node} go "
                  f"unanswered until `{restart_command} {info.node}`")
    else:
        effect = f"traffic through {info.node} is dropped until `{restart_command} {info.node}`"
    return f"{label} (pid {info.pid}) {info.state}: {effect}"


def socket_ready(path: str, probe: Callable[[], object]) -> Callable[[], bool]:
    """A ready() for daemons with a control socket: it exists and probe() answers."""
    def ready() -> bool:
        if not os.path.exists(path):
            return False
        try:
            probe()
            return True
        except (OSError, TestbedError, subprocess.TimeoutExpired):
            return False
    return ready
