"""Signals while the testbed builds or tears down: SIGTERM and SIGHUP turned into an exception
the build unwinds on (as on Ctrl-C), and a teardown that, once begun, cannot be interrupted."""
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import NoReturn


class Interrupted(BaseException):
    """Raised in the main thread on SIGTERM/SIGHUP, so that teardown runs as on Ctrl-C."""


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP are ignored: they ask for a teardown,
    and one half done would leave half a cluster. (A handler that does nothing, not SIG_IGN,
    which the commands started meanwhile would inherit.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, lambda _signum, _frame: None) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_interrupt(*more: int) -> Iterator[None]:
    """SIGTERM and SIGHUP (and `more` signals) raise Interrupted while the block runs."""
    def handler(signum: int, _frame: object) -> NoReturn:
        raise Interrupted(signal.Signals(signum).name)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP, *more)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
