"""The one deadline loop: poll a condition until it holds or the time is up."""
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(done: Callable[[], T], timeout: float, every: float = 0.05,
               check: Callable[[], None] | None = None) -> T:
    """Call done() every `every` seconds until it returns something true, and return that; once
    `timeout` seconds have passed, return its last (false) answer, so that the caller says
    what did not happen. done() runs at least once. check(), if given, runs before each try
    and may raise (a daemon that died: waiting on is pointless)."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        result = done()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(every)
