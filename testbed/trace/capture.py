"""tcpdump in many namespaces at once, each writing a pcap file, started before a probe and
ended (by PID, SIGTERM: it flushes as on Ctrl-C, and a shell's `&` job ignores SIGINT) right
after it."""
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable

from testbed.errors import TestbedError

SNAPLEN = 256      # outer headers, a tunnel's header and the inner headers: all the trace reads
READY_TIMEOUT_S = 5.0


def tcpdump_argv(wrap: Callable[[list], list], path: str | None = None, interface: str = "any",
                 bpf: list[str] | None = None, count: int | None = None,
                 snaplen: int = 0) -> list[str]:
    """argv of a tcpdump in a namespace (`wrap` prefixes a command with entering it): decoded
    lines, or with `path` every packet written (packet-buffered, nanosecond stamps) to that
    file ("-": stdout)."""
    argv = ["tcpdump", "-i", interface, "-n"]
    if count:
        argv += ["-c", str(count)]
    if path:
        argv += ["-U", "--immediate-mode", "-s", str(snaplen), "--time-stamp-precision=nano",
                 "-w", path]
    return wrap(argv + list(bpf or []))


class Captures:
    """tcpdumps, one per namespace; a context manager that ends them all on the way out (an
    exception or Ctrl-C included), so that no capture outlives the command."""

    def __init__(self):
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, label: str, argv: list[str]) -> None:
        self.procs[label] = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until every tcpdump says it listens (its first line on stderr)."""
        waiting = {p.stderr.fileno(): label for label, p in self.procs.items()}
        said = dict.fromkeys(waiting, "")
        deadline = time.monotonic() + timeout
        while waiting:
            left = deadline - time.monotonic()
            ready, _, _ = select.select(list(waiting), [], [], max(left, 0))
            if not ready:
                raise TestbedError("tcpdump did not start listening in "
                                   f"{', '.join(sorted(waiting.values()))} within {timeout:.0f} s")
            for fd in ready:
                chunk = os.read(fd, 4096).decode(errors="replace")
                said[fd] += chunk
                if "listening on" in said[fd]:
                    del waiting[fd]
                elif not chunk:  # it exited before listening: its own words say why
                    raise TestbedError(f"tcpdump in {waiting[fd]}: "
                                       f"{said[fd].strip() or 'exited'}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    def __enter__(self) -> "Captures":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
