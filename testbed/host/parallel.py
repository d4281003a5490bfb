"""Independent work done side by side: each node's objects, each node's pods.

The work is mostly waiting for short-lived processes (`ip`, CNI plugins) and the kernel, so a
few threads keep both cores busy. Nodes do not depend on each other, as a kubelet's CNI ADDs on
different nodes do not; one node's own steps stay in order.
"""
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")

WORKERS = max(2, 2 * (os.cpu_count() or 1))


def for_each(items: Iterable[T], work: Callable[[T], None], workers: int = WORKERS) -> None:
    """work(item) for every item, up to `workers` at once. On the first failure (or Ctrl-C)
    no more is started, what runs is waited for, and the first error is raised: when this
    returns or raises, nothing of it still runs (teardown may begin)."""
    listed = list(items)
    if workers <= 1 or len(listed) <= 1:
        for item in listed:
            work(item)
        return
    pool = ThreadPoolExecutor(min(workers, len(listed)), thread_name_prefix="testbed")
    futures = [pool.submit(work, item) for item in listed]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            error = future.exception() if future in done else None
            if error is not None:
                raise error
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
