"""The phases of a bring-up: how long each took (the run's timings) and news of the one under
way (done / total, and the time it needs at its pace so far) for a progress line."""
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

# in the order a build goes through them; each is timed as timings["<phase>_s"]
PHASES = ("underlay", "nodes", "control_plane", "mode_setup", "peers", "daemons", "convergence",
          "pods", "manifests")
REPORT_EVERY_S = 0.25  # news at most this often: a thousand pods need not print a thousand lines


class BuildProgress:
    def __init__(self, timings: dict[str, float],
                 report: Callable[[str], None] | None = None) -> None:
        self.timings = timings
        self.report = report or (lambda _text: None)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._name, self._done, self._total = "", 0, 0
        self._phase_started, self._last_report = 0.0, 0.0

    @contextlib.contextmanager
    def phase(self, name: str, total: int = 0) -> Iterator["BuildProgress"]:
        """A phase of `total` steps (nodes, pods; 0: not counted). Its seconds go in the
        timings as `<name>_s`, added up if it runs more than once."""
        with self._lock:
            self._name, self._done, self._total = name, 0, total
            started = self._phase_started = time.monotonic()
        self._tell(force=True)
        try:
            yield self
        finally:
            key = f"{name}_s"
            self.timings[key] = self.timings.get(key, 0.0) + time.monotonic() - started

    def step(self, count: int = 1) -> None:
        """`count` more steps of the phase done (from any thread)."""
        with self._lock:
            self._done += count
        self._tell()

    def text(self) -> str:
        with self._lock:
            name, done, total = self._name, self._done, self._total
            elapsed = time.monotonic() - self._phase_started
        head = f"{name.replace('_', ' ')}"
        if total:
            head += f" {done}/{total}"
            if 0 < done < total:
                head += f", about {elapsed / done * (total - done):.0f} s more"
        return f"{head} ({time.monotonic() - self.started:.0f} s so far)"

    def _tell(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_report >= REPORT_EVERY_S:
            self._last_report = now
            self.report(self.text())
