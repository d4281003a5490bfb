"""Paired measurement and its verdicts: the schedule, the pairing of each turn with the bare
turns around it, ratios with intervals, the A/A noise floor."""
import math
import random
import statistics

from bench.engine import compare
from bench.engine.paths import Endpoint
from bench.engine.slicing import Flow, paired, schedule

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


def test_a_later_session_numbers_its_cycles_on_and_still_ends_on_a_bare_turn():
    turns = schedule([A], 1, first=61)
    assert turns == [(61, None), (61, A), (61, None)]


def session_samples(mode, offsets, turns=10, ratio=2.0, noise=0.002, path="pod-cross-node",
                    test="tcp-rr", seed=1):
    """Samples of `mode` in sessions whose ratio to bare is `ratio` times a session's own
    offset: turns agree closely inside a session, sessions do not."""
    rng = random.Random(seed)
    metric = "p50_us" if test == "tcp-rr" else "gbps"
    out = []
    for session, offset in enumerate(offsets, 1):
        for _ in range(turns):
            base = rng.uniform(10, 14)
            value = base * ratio * offset * math.exp(rng.gauss(0, noise))
            out.append({"ok": True, "mode": mode, "path": path, "test": test,
                        "session": session, "metrics": {metric: value},
                        "baseline": {metric: base}})
    return out


OFFSETS = [0.95, 1.04, 1.01, 0.97, 1.05, 0.98]


def test_the_interval_is_taken_over_sessions_and_covers_what_moves_between_them():
    samples = session_samples("vxlan", OFFSETS)
    logs = compare.log_ratios(samples)[("vxlan", "pod-cross-node", "tcp-rr", "p50_us")]
    assert sorted(logs) == [1, 2, 3, 4, 5, 6] and all(len(v) == 10 for v in logs.values())
    ratio, low, high = compare.interval(logs)
    mean = 2.0 * math.exp(statistics.fmean(math.log(o) for o in OFFSETS))
    assert low < mean < high and high / low > 1.04
    # taken over turns as if each were independent, the interval is narrow enough to hold
    # none but one of the sessions: what a session fixes is shared by all its turns
    flat = [x for v in logs.values() for x in v]
    _r, flat_low, flat_high = compare.interval(flat)
    assert flat_high / flat_low < 1.02
    assert sum(flat_low < 2.0 * o < flat_high for o in OFFSETS) <= 1


def test_modes_measured_in_the_same_sessions_are_compared_session_by_session():
    # vxlan built twice: both clusters move with the session, together
    samples = session_samples("vxlan", OFFSETS) + session_samples("vxlan-again", OFFSETS,
                                                                  seed=2)
    found, floor = compare.comparisons(samples, {}, [
        ("pod-cross-node", ["vxlan", "vxlan-again"])])
    pair = next(c for c in found if c["mode_b"] == "vxlan-again")
    assert pair["sessions"] == 6 and 0.99 < pair["ci_low"] <= pair["ci_high"] < 1.01
    assert pair["aa_control"] and pair["verdict"] == "same"
    (f,) = floor
    assert (f["path"], f["test"], f["metric"]) == ("pod-cross-node", "tcp-rr", "p50_us")
    assert f["floor"] < 0.01  # the pair's interval, far tighter than either against bare


def test_samples_without_sessions_are_one_session_a_turn():
    samples = [{k: v for k, v in s.items() if k != "session"}
               for s in session_samples("vxlan", [1.0] * 3)]
    logs = compare.log_ratios(samples)[("vxlan", "pod-cross-node", "tcp-rr", "p50_us")]
    assert len(logs) == 30 and all(len(v) == 1 for v in logs.values())
    ratio, low, high = compare.interval(logs)
    assert 1.99 < low < ratio < high < 2.01


def test_each_path_has_its_own_floor_and_an_aa_pair_is_judged_with_the_others():
    rng = random.Random(9)
    # node path A/A: ± 1 % a session; pod path A/A: a 6 % difference, tight
    node = session_samples("bare-again", [math.exp(rng.gauss(0, 0.01)) for _ in range(6)],
                           ratio=1.0, path="node-node")
    pod = (session_samples("vxlan", OFFSETS, path="pod-same-node") +
           session_samples("vxlan-again", [o * 1.06 for o in OFFSETS], path="pod-same-node",
                           seed=3) +
           session_samples("host-gw", [o * 1.04 for o in OFFSETS], path="pod-same-node",
                           seed=4))
    aa_groups = [("node-node", ["bare-again"]), ("pod-same-node", ["vxlan", "vxlan-again"])]
    found, floor = compare.comparisons(node + pod, {"pod-same-node": "node-node"}, aa_groups)
    floors = {f["path"]: f["floor"] for f in floor}
    assert floors["node-node"] < 0.03 < 0.05 < floors["pod-same-node"]
    aa = next(c for c in found if {c["mode_a"], c["mode_b"]} == {"vxlan", "vxlan-again"})
    # its own floor would excuse it; the node path's, set by the other control, does not
    assert aa["aa_control"] and aa["verdict"] == "lower"
    # host-gw 4 % above vxlan: within the pod path's floor (the A/A's 6 %), so `same`
    hg = next(c for c in found if (c["mode_a"], c["mode_b"]) == ("host-gw", "vxlan"))
    assert hg["ci_low"] > 1.0 and hg["verdict"] == "same" and not hg["aa_control"]
    # with a node path A/A as wide as that difference, the pod A/A reads `same`
    wide = session_samples("bare-again", [1.08, 0.93, 1.05, 0.95, 1.07, 0.94], ratio=1.0,
                           path="node-node")
    found, _floor = compare.comparisons(wide + pod, {}, aa_groups)
    aa = next(c for c in found if {c["mode_a"], c["mode_b"]} == {"vxlan", "vxlan-again"})
    assert aa["verdict"] == "same"
    # a path without an A/A control of its own takes the widest floor of its test
    floors = {("a", "tcp-rr", "p50_us"): 0.02, ("b", "tcp-rr", "p50_us"): 0.07}
    assert compare.floor_for(floors, "c", "tcp-rr", "p50_us") == 0.07
    assert compare.floor_for(floors, "b", "tcp-rr", "p50_us", aa_control=True) == 0.02
    assert compare.floor_for(floors, "b", "tcp-1", "gbps", aa_control=True) is None


def test_the_next_runs_interval_is_wider_than_the_confidence_interval():
    samples = session_samples("vxlan", OFFSETS, test="tcp-1")
    found, _floor = compare.comparisons(samples, {}, [])
    (c,) = found
    ci = math.log(c["ci_high"] / c["ratio"])
    again = math.log(c["next_high"] / c["ratio"])
    assert compare.BETWEEN_RUN_SD["tcp-1"] == 0.0  # none measured: both runs' errors alone
    assert abs(again / ci - math.sqrt(2)) < 1e-9
    assert c["next_low"] < c["ci_low"] < c["ratio"] < c["ci_high"] < c["next_high"]


def test_the_next_runs_interval_adds_what_varies_between_runs_only():
    t = compare.t95(len(OFFSETS) - 1)
    logs = [math.log(o) for o in OFFSETS]
    se = statistics.stdev(logs) / math.sqrt(len(logs))
    ratio, low, high, next_low, next_high = compare.t_intervals(logs, between_sd=0.01)
    assert abs(math.log(high / ratio) - t * se) < 1e-12  # the confidence interval: unchanged
    assert abs(math.log(next_high / ratio) - t * math.sqrt(2 * (se ** 2 + 0.01 ** 2))) < 1e-12
    assert abs(math.log(ratio / next_low) - math.log(next_high / ratio)) < 1e-12
    # identical sessions: no spread of their own, yet the next run may land 0.01 away
    _r, lo, hi, nlo, nhi = compare.t_intervals([0.2, 0.2, 0.2], between_sd=0.01)
    assert lo == hi and nhi / nlo > math.exp(2 * t * 0.01 * math.sqrt(2)) - 1e-9
    # a pair of modes: each varies between runs, so their difference by √2 as much
    found, _floor = compare.comparisons(session_samples("vxlan", OFFSETS) +
                                        session_samples("host-gw", OFFSETS, seed=2), {}, [])
    pair = next(c for c in found if c["mode_b"] == "vxlan")
    half = math.log(pair["ci_high"] / pair["ratio"])
    again = math.log(pair["next_high"] / pair["ratio"])
    t_pair = compare.t95(pair["sessions"] - 1)
    between = compare.BETWEEN_RUN_SD["tcp-rr"]
    assert abs(again - math.sqrt(2 * half ** 2 + 4 * (t_pair * between) ** 2)) < 1e-9


def test_a_paired_median_is_the_bare_median_times_the_paired_ratio():
    from bench.engine.results import summarize
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


def test_a_stopped_flow_is_waited_for_until_its_queues_are_drained():
    from bench.engine.slicing import drain
    now = [0.0]
    # a slow datapath still delivering for 50 ms after the stop, then nothing
    counts = lambda: int(min(now[0], 0.05) * 1e6)  # noqa: E731

    def sleep(s):
        now[0] += s
    took = drain(counts, quiet_s=0.002, limit_s=2.0, clock=lambda: now[0], sleep=sleep)
    assert 0.05 <= took < 0.055
    # one still delivering at the limit is left to it
    now[0] = 0.0
    took = drain(lambda: int(now[0] * 1e6), quiet_s=0.002, limit_s=0.1,
                 clock=lambda: now[0], sleep=sleep)
    assert 0.1 <= took < 0.102
    # an idle one costs the quiet time only
    now[0] = 0.0
    assert drain(lambda: 7, quiet_s=0.002, clock=lambda: now[0], sleep=sleep) == 0.002
    # a sender quiet while it waits out a retransmission timeout: drained once acknowledged
    now[0] = 0.0
    unacked = lambda: 0 if now[0] >= 0.2 else 65536  # noqa: E731
    took = drain(lambda: 7, unacked, quiet_s=0.002, clock=lambda: now[0], sleep=sleep)
    assert 0.2 <= took < 0.202


def test_unacked_bytes_count_the_flows_established_connections_only():
    from bench.engine.slicing import unacked_bytes
    table = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt
   0: 0100F40A:A1B2 0200F40A:1451 01 00010000:00000000 01:00000014 00000000
   1: 0100F40A:A1B4 0200F40A:1451 01 00000200:00000000 00:00000000 00000000
   2: 0100F40A:A1B6 0200F40A:1451 04 00004000:00000000 01:00000014 00000000
   3: 0100F40A:A1B8 0200F40A:1452 01 00008000:00000000 01:00000014 00000000
"""
    # port 0x1451 = 5201: two established connections (65536 + 512); the one in FIN_WAIT1
    # (st 04), left by an earlier session's tool, and the other port's are not counted
    assert unacked_bytes(table, 5201) == 65536 + 512
    assert unacked_bytes(table, 5202) == 0x8000
    assert unacked_bytes(table, 5203) == 0


def test_a_failed_turn_fails_only_that_turn_unless_the_tool_is_gone():
    from bench.engine.slicing import FlowSession
    from bench.tools.tool import ToolError

    class Proc:
        def __init__(self, pid, alive):
            self.pid, self.alive = pid, alive

        def poll(self):
            return None if self.alive else 1

    class Flaky(FlowSession):
        def _measure(self, flow, seconds):
            raise ToolError("moved nothing in its turn")

    session = Flaky([A, B])
    session.clients = {A: Proc(1, alive=True), B: Proc(2, alive=False)}
    session.servers = {A: Proc(3, alive=True), B: Proc(4, alive=True)}
    assert session.turn(A, 0.1)["error"] == "moved nothing in its turn"
    assert A not in session.failed  # its next turn is measured again
    session.turn(B, 0.1)
    assert session.failed[B] == "moved nothing in its turn"  # its client has ended


def test_a_run_is_summarized_again_from_its_samples(tmp_path):
    import json

    from bench.engine import results
    samples = session_samples("vxlan", OFFSETS)
    for name, doc in (("machine.json", {}), ("samples.json", samples),
                      ("summary.json", {"elapsed_s": 512.5, "status": "complete",
                                        "run": "r1", "comparisons": []})):
        (tmp_path / name).write_text(json.dumps(doc))
    results.main([str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    (c,) = summary["comparisons"]
    assert (c["mode_a"], c["mode_b"], c["sessions"]) == ("vxlan", "bare", 6)
    assert c["next_low"] < c["ci_low"] < c["ci_high"] < c["next_high"]
    assert (summary["elapsed_s"], summary["status"], summary["run"]) == (512.5, "complete", "r1")
    assert summary["resummarized"] is True
    assert results.main([str(tmp_path / "nowhere")]) == 1
