"""The run's controls (vxlan built twice, flannel's modes at one pod MTU) and the reading of
several runs side by side (bench.studies.consistency), without root."""
import math

from bench.engine import controls
from bench.studies import consistency


def test_controls_are_planned_beside_the_modes_they_stand_for():
    planned = controls.plan(["bare", "host-gw", "vxlan", "udp", "bgp"],
                            {"bare": 1500, "host-gw": 1500, "vxlan": 1450, "udp": 1472,
                             "bgp": 1500})
    assert [(c.name, c.mode, c.paths, c.pod_mtu) for c in planned] == [
        ("vxlan-again", "vxlan", ("pod-same-node", "pod-cross-node"), 0),
        ("host-gw-mtu1450", "host-gw", ("pod-same-node",), 1450),
        ("udp-mtu1450", "udp", ("pod-same-node",), 1450)]
    # without vxlan there is neither the pod A/A nor an MTU to match
    assert controls.plan(["bare", "host-gw", "udp"], {"host-gw": 1500, "udp": 1472}) == []
    # a jumbo underlay: the controls take vxlan's pod MTU there
    jumbo = controls.plan(["vxlan", "udp"], {"vxlan": 8950, "udp": 8972})
    assert [c.name for c in jumbo] == ["vxlan-again", "udp-mtu8950"]


def test_a_controls_underlay_mtu_gives_its_pods_the_mtu_it_is_built_for():
    hg, udp = controls.plan(["vxlan", "host-gw", "udp"],
                            {"vxlan": 1450, "host-gw": 1500, "udp": 1472})[1:]
    assert controls.underlay_mtu_for(hg, 1500, 1500) == 1450
    assert controls.underlay_mtu_for(udp, 1472, 1500) == 1478  # flannel udp takes 28 off
    again = controls.plan(["vxlan"], {"vxlan": 1450})[0]
    assert controls.underlay_mtu_for(again, 1450, 1500) == 1500


def test_aa_groups_follow_what_was_measured():
    paths = [("pod-same-node", "pod"), ("pod-cross-node", "pod"), ("node-node", "node")]
    measured = {("vxlan-again", "pod-same-node"), ("vxlan", "pod-same-node")}
    assert controls.aa_groups(paths, measured) == [
        ("pod-same-node", ["vxlan", "vxlan-again"]), ("node-node", ["bare-again"])]
    assert controls.equal_mtu_names(["bgp", "host-gw-mtu1450", "udp-mtu1450", "vxlan"]) == [
        "vxlan", "host-gw-mtu1450", "udp-mtu1450"]
    assert controls.equal_mtu_names(["bgp", "vxlan"]) == []


def comparison(a, b, ratio, low, high, verdict="same", path="pod-cross-node", test="tcp-rr",
               metric="p50_us"):
    return {"mode_a": a, "mode_b": b, "path": path, "test": test, "metric": metric,
            "ratio": ratio, "ci_low": low, "ci_high": high, "verdict": verdict,
            "next_low": ratio * (low / ratio) ** 2, "next_high": ratio * (high / ratio) ** 2}


def test_coverage_counts_ordered_pairs_of_runs():
    # 1.00 lies in [0.97, 1.05] and 1.02 in [0.95, 1.03]; 1.10 in neither, and neither in its
    found = [(1.00, 0.95, 1.03), (1.02, 0.97, 1.05), (1.10, 1.08, 1.12)]
    assert consistency.coverage(found) == (2, 6)


def test_the_ratio_table_and_controls_of_several_runs():
    runs = [{"comparisons": [
        comparison("vxlan", "bare", r, r * 0.97, r * 1.03, "higher"),
        comparison("vxlan", "vxlan-again", aa, aa * 0.98, aa * 1.02,
                   "same" if aa * 0.98 <= 1 <= aa * 1.02 else "lower")]}
        for r, aa in ((1.90, 1.0), (1.95, 1.01), (2.00, 0.93))]
    lines, covered, pairs = consistency.ratio_table(runs, "tcp-rr", "p50_us", "TCP RR p50")
    row = next(line for line in lines if line.startswith("| vxlan | pod-cross-node"))
    # 1.90 [1.843-1.957], 1.95 [1.891-2.009], 2.00 [1.940-2.060]: the first and the third
    # each lie outside the other's interval
    assert "1.900 [1.843–1.957]" in row and "5.3 %" in row and "| 4/6 |" in row
    # the next run's intervals, wider (about ±6 %), hold 1.90 and 2.00 in each other
    assert row.endswith("| 6/6 |") and (covered, pairs) == (6, 6)
    table, failed = consistency.controls_table(runs)
    assert any("vxlan / vxlan-again | pod-cross-node | tcp-rr" in line for line in table)
    assert failed == ["run 3: vxlan/vxlan-again pod-cross-node tcp-rr 0.930 lower"]


def test_a_comparison_is_read_either_way_round():
    run = {"comparisons": [comparison("udp-mtu1450", "vxlan", 1.25, 1.2, 1.3, "higher")]}
    c = consistency.between(run, "pod-cross-node", "tcp-rr", "p50_us", "vxlan", "udp-mtu1450")
    assert (c["ratio"], c["verdict"]) == (0.8, "lower")
    assert abs(c["ci_low"] - 1 / 1.3) < 1e-12 and abs(c["ci_high"] - 1 / 1.2) < 1e-12


def test_ratios_by_placement_pool_every_runs_sessions_of_one_placement():
    def turn(session, mode, value, client, daemons):
        sample = {"ok": True, "test": "tcp-rr", "path": "pod-cross-node", "mode": mode,
                  "session": session, "placement": [client, 1 - client],
                  "client": "node1-pod1", "server": "node2-pod1",
                  "metrics": {"p50_us": value}, "baseline": {"p50_us": 10.0}}
        if daemons is not None:
            sample["daemon_cpus"] = {"forwarder@node1": daemons[0],
                                     "forwarder@node2": daemons[1],
                                     "forwarder@node3": 0}  # on no path of this sample
        return sample
    # both daemons with the client: CPU 0 with the client on 0, CPU 1 with it on 1
    run1 = [turn(1, "udp", 40.0, 0, (0, 0)), turn(1, "udp", 40.0, 0, (0, 0)),
            turn(2, "udp", 35.0, 1, (0, 1)), turn(1, "vxlan", 20.0, 0, None)]
    run2 = [turn(1, "udp", 44.1, 1, (1, 1)), turn(2, "udp", 35.0, 0, (1, 0))]
    lines = consistency.placement_table([run1, run2])
    rows = lines[2:]
    assert len(rows) == 2  # vxlan pinned nothing: not listed
    together = next(r for r in rows if "node1: client's CPU; node2: client's CPU" in r)
    # sessions 4.0 and 4.41: geometric mean 4.2, two sessions
    assert together.startswith("| udp | pod-cross-node | node1: client's CPU; node2: client's")
    assert together.endswith("| 4.200 | 6.9 % | 2 |")
    apart = next(r for r in rows if "node1: server's CPU; node2: client's CPU" in r)
    assert apart.endswith("| 3.500 | 0.0 % | 2 |") and "node3" not in apart
    assert consistency.placement_table([[turn(1, "vxlan", 20.0, 0, None)]]) == []


def test_the_between_run_component_is_what_runs_vary_by_beyond_their_sessions():
    def run(shift, pinned_shift=0.0):
        samples = []
        for session, offset in enumerate((-0.01, 0.01), 1):
            for mode, extra, daemons in (("vxlan", shift, None),
                                         ("udp", pinned_shift, {"forwarder@node1": 0})):
                value = 20.0 * math.exp(offset + extra)
                sample = {"ok": True, "test": "tcp-rr", "path": "pod-cross-node",
                          "mode": mode, "session": session, "metrics": {"p50_us": value},
                          "baseline": {"p50_us": 10.0}}
                if daemons:
                    sample["daemon_cpus"] = daemons
                samples.append(sample)
        return samples
    # sessions ±0.01 around each run's mean: squared standard error of a run's mean 1e-4;
    # the runs' means 0, +0.03, -0.03 vary by 9e-4: 8e-4 beyond the sessions, SD 0.0283
    runs = [run(0.0, 0.5), run(0.03, -0.5), run(-0.03)]
    sd, flows = consistency.between_run_sd(runs, "tcp-rr", "p50_us")
    assert flows == 1  # udp's daemons were pinned: its placements are its own spread
    assert abs(sd - math.sqrt(8e-4)) < 1e-9
    # runs that agree better than their sessions say: no component, not a negative one
    assert consistency.between_run_sd([run(0.0), run(0.001)], "tcp-rr", "p50_us") == (0.0, 1)
    assert consistency.between_run_sd([run(0.0)], "tcp-1", "gbps") == (None, 0)
