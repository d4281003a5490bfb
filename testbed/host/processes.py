"""Processes the testbed started: who they are (PID and kernel start time), and ending them.

A PID is always recorded with its start time, so that a PID the kernel has reused for an
unrelated process is never signalled; nothing here finds a process by name.
"""
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from testbed.host import netns
from testbed.host.waiting import wait_until


@dataclass
class Process:
    """A process the run started: its PID with the kernel's start time, so that a reused PID
    is never taken for it."""
    pid: int
    start: int | None
    what: str = ""


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of a process (clock ticks since boot), or None if it is gone.

    Recorded beside each PID so that a PID reused by an unrelated process is never signalled.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name in field 2 may hold spaces; fields after it are plain
    return int(stat.rsplit(")", 1)[1].split()[19])


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def pid_is(pid: int | None, start: int | None) -> bool:
    """Is `pid` still the live process that started at `start`? (A zombie counts as ended.)"""
    return (pid is not None and start is not None and process_start_time(pid) == start
            and not _is_zombie(pid))


def terminate(pid: int, start: int | None, grace: float = 3.0) -> None:
    """SIGTERM a process we started (if it is still that process), then SIGKILL after grace."""
    if not pid_is(pid, start):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_is(pid, start), grace, 0.02)
        if pid_is(pid, start):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def end_processes_in(ns_id: int | None, grace: float = 3.0) -> list[int]:
    """End whatever still runs in a network namespace that is being removed — a daemon started
    with `testbed exec` would otherwise outlive its pod or node and keep the namespace alive.
    Found by namespace, ended by PID (with its start time checked), never by name."""
    return end_processes_in_all([ns_id], grace)


def end_processes_in_all(ns_ids: Iterable[int | None], grace: float = 3.0) -> list[int]:
    """end_processes_in() for many namespaces, with one pass over /proc and one grace period.
    Never the namespace this program or init runs in: a recorded PID that has been reused
    there must not turn into "everything on the machine"."""
    own = {netns.namespace_id("/proc/self/ns/net"), netns.namespace_id("/proc/1/ns/net")}
    wanted = {i for i in ns_ids if i is not None and i not in own}
    if not wanted:
        return []
    found = [(pid, process_start_time(pid))
             for pids in netns.processes_in_any(wanted).values() for pid in pids]
    end_together(found, grace)
    return [pid for pid, _ in found]


def remove_named_namespaces(names: list[str]) -> list[int]:
    """Whatever runs in the named namespaces ended (one pass over /proc), then the names
    deleted with one `ip`; returns the PIDs ended."""
    ended = end_processes_in_all([netns.namespace_id(netns.netns_path(n)) for n in names])
    netns.delete_named(names)
    return ended


def end_together(processes: Iterable[tuple[int, int | None]], grace: float = 3.0) -> None:
    """SIGTERM every (pid, start) still that process, then SIGKILL those alive after `grace`
    (one grace period for all of them, not one each)."""
    alive = [(pid, start) for pid, start in processes if pid_is(pid, start)]
    _signal_all(alive, signal.SIGTERM)
    def all_ended() -> bool:
        alive[:] = [(pid, start) for pid, start in alive if pid_is(pid, start)]
        return not alive

    wait_until(all_ended, grace, 0.02)
    _signal_all(alive, signal.SIGKILL)


def _signal_all(processes: Iterable[tuple[int, int | None]], signum: int) -> None:
    for pid, _start in processes:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def describe_exit(returncode: int | None) -> str:
    """How a process we started ended, in words (a Popen returncode; None = running)."""
    if returncode is None:
        return "running"
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"
