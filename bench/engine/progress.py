"""A progress line: what is measured now and an estimate of the time left."""
import sys
import time
from typing import TextIO


def _clock(seconds):
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    WIDTH = 24

    def __init__(self, total_estimate_s: float, stream: TextIO | None = None):
        self.total = max(total_estimate_s, 1e-6)
        self.done = 0.0
        self.started = time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def time_left(self) -> float:
        elapsed = time.monotonic() - self.started
        pace = elapsed / self.done if self.done > 0 else 1.0  # real seconds per estimated one
        return (self.total - self.done) * pace

    def line(self, label: str) -> str:
        frac = min(self.done / self.total, 1.0)
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"[{bar}] {frac * 100:3.0f}%  {label}  | about {_clock(self.time_left())} left"

    def show(self, label: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line(label))
        else:
            self.stream.write(self.line(label) + "\n")
        self.stream.flush()

    def advance(self, estimate_s: float) -> None:
        self.done += estimate_s

    def extend(self, estimate_s: float) -> None:
        """More work became known (once the clusters are up and their paths counted)."""
        self.total += estimate_s

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        elapsed = time.monotonic() - self.started
        self.stream.write(f"measured in {_clock(elapsed)}\n")
        self.stream.flush()
