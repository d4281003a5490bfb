"""A bring-up's phases: timed into the run's timings, news of the one under way."""
from testbed.lifecycle import progress as progressmod
from testbed.lifecycle.progress import BuildProgress


def test_each_phase_is_timed_and_counted(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progressmod.time, "monotonic", lambda: clock[0])
    timings, heard = {}, []
    build = BuildProgress(timings, heard.append)
    with build.phase("underlay"):
        clock[0] += 2.0
    with build.phase("pods", 10):
        for _ in range(4):
            clock[0] += 0.5
            build.step()
        assert build.text() == "pods 4/10, about 3 s more (4 s so far)"
    with build.phase("underlay"):  # a phase run twice adds up
        clock[0] += 1.0
    assert timings == {"underlay_s": 3.0, "pods_s": 2.0}
    assert heard[0] == "underlay (0 s so far)" and "pods 0/10" in heard[1]
