"""Paired measurement and its verdicts: the schedule, the pairing of each turn with the bare
turns around it, ratios with intervals, the A/A noise floor."""
import math
import random

from bench import compare
from bench.paths import Endpoint
from bench.slicing import Flow, paired, schedule

BARE = Flow("bare", "node-node", Endpoint("node1", "192.168.1.11"),
            Endpoint("node2", "192.168.1.12"))
A = Flow("vxlan", "pod-cross-node", Endpoint("p1", "10.244.0.2"), Endpoint("p2", "10.244.1.2"))
B = Flow("host-gw", "pod-cross-node", Endpoint("p1", "10.244.0.2"),
         Endpoint("p2", "10.244.1.2"))


def test_every_turn_sits_between_two_bare_turns_and_the_order_rotates():
    turns = schedule([A, B], 2)
    assert [f.mode if f else "bare" for _c, f in turns] == [
        "bare", "vxlan", "bare", "host-gw", "bare", "host-gw", "bare", "vxlan", "bare"]
    assert [c for c, _f in turns] == [1, 1, 1, 1, 2, 2, 2, 2, 2]


def test_a_turn_is_paired_with_the_mean_of_the_bare_turns_around_it():
    def ok(gbps):
        return {"ok": True, "error": None, "metrics": {"gbps": gbps}}
    turns = [(1, None, ok(10.0)), (1, A, ok(6.0)), (1, None, ok(12.0)), (1, B, ok(9.0)),
             (1, None, {"ok": False, "error": "x", "metrics": {}})]
    samples = paired(turns, BARE)
    assert [s["mode"] for s in samples] == ["bare", "vxlan", "bare", "host-gw", "bare"]
    assert samples[1]["baseline"] == {"gbps": 11.0}
    assert samples[3]["baseline"] == {"gbps": 12.0}  # the failed bare turn is left out
    assert "baseline" not in samples[0]


def fake_samples(ratios, mode, path="pod-cross-node", test="tcp-1", seed=1):
    """Samples whose bare value drifts wildly while the paired ratio stays near `ratios`."""
    rng = random.Random(seed)
    out = []
    for r in ratios:
        base = rng.uniform(5, 20)  # the machine's speed, which pairing must cancel
        out.append({"ok": True, "mode": mode, "path": path, "test": test,
                    "metrics": {"gbps": base * r}, "baseline": {"gbps": base}})
    return out


def test_pairs_cancel_the_machines_drift_and_give_a_tight_interval():
    rng = random.Random(7)
    samples = fake_samples([0.7 * math.exp(rng.gauss(0, 0.05)) for _ in range(40)], "vxlan")
    found, floor = compare.comparisons(samples, {"pod-cross-node": "node-node"}, [])
    (c,) = found
    assert (c["mode_a"], c["mode_b"], c["bare_path"]) == ("vxlan", "bare", "node-node")
    assert 0.67 < c["ci_low"] < c["ratio"] < c["ci_high"] < 0.73
    assert c["verdict"] == "lower" and floor == []


def test_identical_datapaths_set_the_floor_and_differences_inside_it_are_the_same():
    rng = random.Random(3)
    noisy = [math.exp(rng.gauss(0, 0.2)) for _ in range(30)]
    samples = (fake_samples(noisy, "host-gw", "pod-same-node") +
               fake_samples(noisy[::-1], "vxlan", "pod-same-node", seed=2) +
               fake_samples([1.04] * 15 + [1.06] * 15, "udp", "pod-same-node", seed=4))
    found, floor = compare.comparisons(samples, {}, [("pod-same-node", ["host-gw", "vxlan"])])
    (f,) = floor
    assert (f["test"], f["metric"]) == ("tcp-1", "gbps") and 0.1 < f["floor"] < 0.4
    udp_vs_bare = next(c for c in found if c["mode_a"] == "udp" and c["mode_b"] == "bare")
    assert udp_vs_bare["ci_low"] > 1.0 and udp_vs_bare["verdict"] == "same"  # within floor
    pair = next(c for c in found if {c["mode_a"], c["mode_b"]} == {"host-gw", "vxlan"})
    assert pair["verdict"] == "same"


def test_verdicts():
    assert compare.verdict(0.9, 1.05, None) == "same"
    assert compare.verdict(1.02, 1.1, None) == "higher"
    assert compare.verdict(1.02, 1.1, 0.12) == "same"
    assert compare.verdict(0.5, 0.8, 0.12) == "lower"


def test_the_bare_path_measured_twice_gives_the_floor():
    rng = random.Random(5)
    again = fake_samples([math.exp(rng.gauss(0, 0.1)) for _ in range(40)], "bare-again",
                         "node-node")
    found, floor = compare.comparisons(again, {}, [("node-node", ["bare-again"])])
    (f,) = floor
    (c,) = found
    assert f["floor"] == max(1 - c["ci_low"], c["ci_high"] - 1) and 0.01 < f["floor"] < 0.1
    assert c["verdict"] == "same"


def test_extra_cycles_are_numbered_on_and_still_end_on_a_bare_turn():
    turns = schedule([A], 1, first=61)
    assert turns == [(61, None), (61, A), (61, None)]


class FakeSession:
    """Turns of a steady bare path, a steady mode A and a noisy mode B."""

    def __init__(self, flows):
        self.rng = random.Random(5)
        self.count = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def turn(self, flow, seconds):
        self.count[flow] = self.count.get(flow, 0) + 1
        spread = {BARE: 0.01, A: 0.01, B: 0.4}[flow]
        return {"ok": True, "error": None,
                "metrics": {"gbps": 10 * math.exp(self.rng.gauss(0, spread))}}


def test_only_the_flows_short_of_the_precision_go_on_and_never_past_the_cap():
    from bench import harness
    from bench.measures import BY_NAME
    from bench.slicing import run_sliced
    made, turns = [], []

    def open_session(flows):
        made.append(FakeSession(flows))
        return made[0]
    settled = harness._settled(BY_NAME["tcp-1"], BARE, 60)
    run_sliced(open_session, [A, B], BARE, 10, 0.0, turns, until=(settled, 60))
    counts = made[0].count
    assert counts[A] == 10  # ± 1 % after ten pairs: no more turns
    # ± 40 % a turn: ± 5 % would take about 250 turns, more than the cap: none are added
    assert counts[B] == 10 and settled(B, turns)


def test_a_flow_that_can_reach_the_precision_goes_on_until_it_does():
    from bench import harness
    from bench.measures import BY_NAME
    from bench.slicing import run_sliced
    made, turns = [], []

    class Noisier(FakeSession):
        def turn(self, flow, seconds):
            out = super().turn(flow, seconds)
            if flow is A:  # ± 12 % a turn: ± 5 % takes about 25 turns
                out["metrics"]["gbps"] = 10 * math.exp(self.rng.gauss(0, 0.12))
            return out

    def open_session(flows):
        made.append(Noisier(flows))
        return made[0]
    settled = harness._settled(BY_NAME["tcp-1"], BARE, 60)
    run_sliced(open_session, [A], BARE, 10, 0.0, turns, until=(settled, 60))
    assert 10 < made[0].count[A] < 60 and settled(A, turns)
    assert turns[-1][1] is None  # the last A turn has its bare turn after it


def test_a_paired_median_is_the_bare_median_times_the_paired_ratio():
    from bench.results import summarize
    turns = []
    rng = random.Random(11)
    for cycle in range(1, 31):
        speed = rng.uniform(0.6, 1.4)  # the machine, which moves both sides of a pair alike
        turns += [(cycle, None, {"ok": True, "error": None, "metrics": {"gbps": 10 * speed}}),
                  (cycle, A, {"ok": True, "error": None, "metrics": {"gbps": 7 * speed}})]
    turns.append((30, None, {"ok": True, "error": None, "metrics": {"gbps": 10.0}}))
    samples = [{**s, "test": "tcp-1"} for s in paired(turns, BARE)]
    rows = summarize(samples, [], {"pod-cross-node": "node-node"})["rows"]
    row = next(r for r in rows if (r["mode"], r["metric"]) == ("vxlan", "gbps"))
    bare = next(r for r in rows if (r["mode"], r["metric"]) == ("bare", "gbps"))
    assert row["paired_median"] == bare["median"] * row["ratio_to_bare"]
    assert 0.65 < row["ratio_to_bare"] < 0.75  # each pair against the mean of two bare turns
