"""Work side by side: everything done, the first failure raised, nothing left running."""
import threading
import time

import pytest

from testbed.host.parallel import for_each


def test_every_item_is_done_and_items_run_side_by_side():
    seen, running, most = [], [0], [0]
    lock = threading.Lock()

    def work(item):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
            seen.append(item)
    for_each(range(12), work, workers=4)
    assert sorted(seen) == list(range(12))
    assert most[0] > 1


def test_the_first_failure_is_raised_once_what_runs_has_finished():
    finished, started = [], []

    def work(item):
        started.append(item)
        if item == 0:
            raise ValueError("node 0 broke")
        time.sleep(0.05)
        finished.append(item)
    with pytest.raises(ValueError, match="node 0 broke"):
        for_each(range(20), work, workers=2)
    # what had started has finished; what had not, never started
    assert sorted(finished) == sorted(i for i in started if i != 0)
    assert len(started) < 20
