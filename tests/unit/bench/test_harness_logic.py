"""Benchmark planning, statistics, path selection and summaries, without root."""
import io
import math

import pytest

from bench.engine import stats
from bench.engine.harness import (
    Options,
    _check_choice,
    _estimate,
    cluster_label,
    family_label,
    paths_for,
    prepare_spec,
)
from bench.engine.paths import BY_NAME, NotApplicable, endpoints
from bench.engine.progress import Progress
from bench.engine.results import summarize, tidy_rows
from bench.plots.report import summary_table
from testbed.errors import TestbedError

from ..states import state_from


def test_median_ci_reaches_95_percent_only_with_enough_samples():
    low, high, cov = stats.median_ci([5, 1, 3])
    assert (low, high) == (1, 5) and cov == pytest.approx(0.75)
    xs = list(range(1, 11))
    low, high, cov = stats.median_ci(xs)
    assert (low, high) == (2, 9) and cov == pytest.approx(1 - 2 * 11 / 1024)
    assert cov >= 0.95


def test_cv_and_percentile():
    assert stats.cv([10, 10, 10]) == 0
    assert stats.cv([9, 11]) == pytest.approx(math.sqrt(2) / 10)
    assert stats.cv([1]) is None
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile(list(range(101)), 99) == 99


def test_bare_measures_node_paths_modes_pod_paths_and_baselines_follow_choices():
    assert [p.name for p in paths_for("vxlan", None)] == [
        "pod-same-node", "pod-cross-node", "pod-cross-rack"]
    assert [p.name for p in paths_for("bare", None)] == ["node-node", "node-cross-rack"]
    assert [p.name for p in paths_for("bare", ["pod-cross-rack"])] == ["node-cross-rack"]


def test_unknown_choices_are_named():
    with pytest.raises(TestbedError, match="unknown path pod-moon"):
        _check_choice("path", ["pod-moon"], ["pod-same-node"])


DOC = {
    "nodes": {"n1": {"rack": "r1", "ip": "192.168.1.11", "pid": 11},
              "n2": {"rack": "r1", "ip": "192.168.1.12", "pid": 12},
              "n3": {"rack": "r2", "ip": "192.168.2.11", "pid": 13}},
    "pods": {"default/p1":
             {"name": "p1", "node": "n1", "ip": "10.244.0.2", "netns": "p1.default.c"},
             "default/p2":
             {"name": "p2", "node": "n1", "ip": "10.244.0.3", "netns": "p2.default.c"},
             "default/p3":
             {"name": "p3", "node": "n2", "ip": "10.244.1.2", "netns": "p3.default.c"},
             "default/p4":
             {"name": "p4", "node": "n3", "ip": "10.244.2.2", "netns": "p4.default.c"}},
}


@pytest.mark.parametrize("path, client, server", [
    ("pod-same-node", "p1", "p2"), ("pod-cross-node", "p1", "p3"),
    ("pod-cross-rack", "p1", "p4"), ("node-node", "n1", "n2"), ("node-cross-rack", "n1", "n3"),
])
def test_endpoints_realise_each_path(path, client, server):
    c, s = endpoints(BY_NAME[path], state_from(DOC))
    assert (c.name, s.name) == (client, server)


def test_endpoints_explain_why_a_path_is_not_applicable():
    one_rack = state_from({
        "nodes": {k: v for k, v in DOC["nodes"].items() if v["rack"] == "r1"},
        "pods": {k: DOC["pods"][k] for k in ("default/p1", "default/p3")}})
    with pytest.raises(NotApplicable, match="single rack"):
        endpoints(BY_NAME["pod-cross-rack"], one_rack)
    with pytest.raises(NotApplicable, match="no node runs two pods"):
        endpoints(BY_NAME["pod-same-node"], one_rack)


def sample(mode, path, test, ok=True, **metrics):
    return {"repeat": 1, "mode": mode, "path": path, "test": test, "ok": ok,
            "error": None if ok else "iperf3: unable to connect to server: Connection refused",
            "metrics": metrics}


def test_summary_medians_ratios_and_failures():
    samples = [sample("bare", "node-node", "tcp-1", gbps=g) for g in (10, 12, 11)]
    samples += [sample("vxlan", "pod-cross-node", "tcp-1", gbps=g) for g in (7, 8, 6)]
    samples += [sample("vxlan", "pod-same-node", "tcp-1", ok=False)]
    summary = summarize(samples)
    rows = {(r["mode"], r["path"], r["metric"]): r for r in summary["rows"]}
    vx = rows[("vxlan", "pod-cross-node", "gbps")]
    assert (vx["median"], vx["n"], vx["ci_low"], vx["ci_high"]) == (7, 3, 6, 8)
    assert vx["ratio_to_bare"] == pytest.approx(7 / 11) and vx["bare_path"] == "node-node"
    assert "ratio_to_bare" not in rows[("bare", "node-node", "gbps")]
    assert summary["failures"] == [{"mode": "vxlan", "path": "pod-same-node", "test": "tcp-1",
                                    "count": 1, "errors": [samples[-1]["error"]]}]
    table = summary_table({**summary, "not_applicable": []}, ["bare", "vxlan"])
    assert "7.00 (0.64×)" in table and "FAILED 1× vxlan pod-same-node tcp-1" in table


def test_tidy_rows_keep_failed_samples_without_a_value():
    rows = list(tidy_rows("run1", [sample("vxlan", "pod-same-node", "tcp-1", ok=False),
                                   sample("bare", "node-node", "icmp", rtt_p50_ms=0.05)]))
    assert rows[0]["value"] == "" and rows[0]["ok"] is False and "refused" in rows[0]["error"]
    assert (rows[1]["metric"], rows[1]["value"], rows[1]["unit"]) == ("rtt_p50_ms", 0.05, "ms")


def test_progress_estimates_time_left_from_the_pace_so_far():
    out = io.StringIO()
    p = Progress(100, out)
    p.started -= 20  # 20 s spent ...
    p.advance(10)    # ... on 10 estimated seconds: twice as slow as planned
    assert "about 3m00s left" in p.line("vxlan pod-cross-node tcp-1")
    p.show("x")
    assert out.getvalue().startswith("[##----")


def test_options_defaults_fit_the_ten_minute_budget():
    from bench.engine.harness import CLUSTER_OVERHEAD_S
    from bench.engine.measures import HEADLINE_TESTS, MEASURES
    from bench.engine.paths import Endpoint
    from bench.engine.slicing import Flow
    opt = Options()
    node = Endpoint("n", "192.168.1.11")
    bare = Flow("bare", "node-node", node, node)
    # default.yaml: bare node-node paired with seven modes' two pod paths, vxlan-again's two
    # and the two equal-MTU controls' one each
    modes = [Flow(f"m{i}", p, node, node) for i in range(7)
             for p in ("pod-same-node", "pod-cross-node")]
    built = {"vxlan-again": None, "host-gw-mtu1450": None, "udp-mtu1450": None}
    modes += [Flow(name, "pod-same-node", node, node) for name in built]
    modes.append(Flow("vxlan-again", "pod-cross-node", node, node))
    measures = [m for m in MEASURES if m.name in HEADLINE_TESTS]
    planned = _estimate(measures, {"node-node": (bare, modes)}, opt, built)
    assert planned + 11 * CLUSTER_OVERHEAD_S < 10 * 60


def test_tests_default_to_the_headline_and_full_adds_the_rest():
    from bench.engine.harness import tests_chosen
    assert tests_chosen(Options()) == ["tcp-1", "tcp-rr"]
    assert tests_chosen(Options(tests=["full"])) == ["tcp-1", "tcp-n", "udp", "tcp-rr", "icmp"]
    assert "udp-rr" in tests_chosen(Options(tests=["all"]))
    with pytest.raises(TestbedError, match="unknown test tcp-9"):
        tests_chosen(Options(tests=["tcp-9"]))


def test_sessions_swap_client_and_server_between_the_two_cpus(monkeypatch):
    from bench.engine import cpu
    monkeypatch.setattr(cpu, "PINNED_CPUS", (0, 1))
    placements = [cpu.session_cpus(k) for k in range(1, 5)]
    assert placements == [(0, 1), (1, 0), (0, 1), (1, 0)]
    monkeypatch.setattr(cpu, "PINNED_CPUS", None)
    assert cpu.session_cpus(1) is None


def test_a_session_cycle_count_splits_the_slices():
    from bench.engine.harness import _cycles
    from bench.engine.measures import BY_NAME as M
    opt = Options()
    assert (opt.sessions, opt.slices) == (8, 80)
    assert [_cycles(M[t], opt) for t in ("tcp-1", "tcp-rr", "icmp", "tcp-n")] == [10, 4, 4, 3]
    assert _cycles(M["tcp-1"], Options(sessions=100, slices=42)) == 1  # never none


def test_a_disturbed_whole_run_is_flagged_and_not_measured_again(monkeypatch):
    from bench.engine import cpu, harness
    calls = []

    def fake_measure(measure, client, server, opt, mtu, daemons):
        calls.append(1)
        return {"gbps": 1.0, "steal_s": 1.0}, 5.0  # 1 of 10 CPU seconds stolen

    monkeypatch.setattr(harness, "measure_sample", fake_measure)
    monkeypatch.setattr(harness.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 2)
    out = harness._measure_once(None, None, None, None, 1500, {})
    assert len(calls) == 1  # a later sample would no longer sit between its bare turns
    assert out["ok"] and out["disturbed"] and out["steal_fraction"] == 0.1


def test_a_quiet_whole_run_is_not_flagged(monkeypatch):
    from bench.engine import cpu, harness
    monkeypatch.setattr(harness, "measure_sample", lambda *a: ({"gbps": 1.0, "steal_s": 0.1}, 5.0))
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 2)
    out = harness._measure_once(None, None, None, None, 1500, {})
    assert out["ok"] and not out["disturbed"]  # 1 % stolen: under the 2 % limit


def test_a_tool_failure_keeps_the_message(monkeypatch):
    from bench.engine import harness
    from bench.tools.tool import ToolError

    def failing(*a):
        raise ToolError("iperf3: the server is busy running a test. try again later")
    monkeypatch.setattr(harness, "measure_sample", failing)
    out = harness._measure_once(None, None, None, None, 1500, {})
    assert (out["ok"], out["metrics"]) == (False, {})
    assert "server is busy" in out["error"]


def test_a_percentile_of_rounded_values_moves_with_the_distribution():
    us = 0.001
    # 17 and 18 µs as ping prints them: the plain median can only be one or the other
    mostly_17 = [(0.017, us)] * 60 + [(0.018, us)] * 40
    mostly_18 = [(0.017, us)] * 40 + [(0.018, us)] * 60
    low, high = stats.rounded_percentile(mostly_17, 50), stats.rounded_percentile(mostly_18, 50)
    assert 0.0165 < low < 0.0175 < high < 0.0185
    assert low == pytest.approx(0.0165 + 0.001 * 50 / 60)
    assert stats.rounded_percentile([(1.25, 0.01), (0.5, us)], 100) == pytest.approx(1.255)
    assert stats.rounded_percentile([], 50) is None


def test_a_damaged_run_directory_is_one_line(tmp_path):
    from bench.engine.results import load_run
    from testbed.errors import TestbedError
    with pytest.raises(TestbedError, match="machine.json: cannot read"):
        load_run(tmp_path)
    for name in ("machine.json", "summary.json", "samples.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "summary.json").write_bytes(b"\x00\x01 not json")
    with pytest.raises(TestbedError, match="summary.json: not the JSON a benchmark writes"):
        load_run(tmp_path)


def test_daemon_placements_cycle_over_eight_sessions_with_the_client_swaps(monkeypatch):
    from bench.engine import cpu
    monkeypatch.setattr(cpu, "PINNED_CPUS", (0, 1))
    labels = ["forwarder@node1", "forwarder@node2"]
    seen = set()
    for session in range(1, 9):
        placed = cpu.daemon_cpus(labels, session)
        seen.add((cpu.session_cpus(session), placed["forwarder@node1"],
                  placed["forwarder@node2"]))
    # every client/server placement meets every daemon placement once
    assert len(seen) == 8
    assert cpu.daemon_cpus(labels, 1) == {"forwarder@node1": 0, "forwarder@node2": 0}
    assert cpu.daemon_cpus(labels, 3) == {"forwarder@node1": 1, "forwarder@node2": 1}
    assert cpu.daemon_cpus(labels, 5) == {"forwarder@node1": 0, "forwarder@node2": 1}
    assert cpu.daemon_cpus(labels, 7) == {"forwarder@node1": 1, "forwarder@node2": 0}
    assert cpu.daemon_cpus(labels, 9) == cpu.daemon_cpus(labels, 1)
    monkeypatch.setattr(cpu, "PINNED_CPUS", None)
    assert cpu.daemon_cpus(labels, 1) == {}


def test_a_daemon_of_no_node_goes_with_the_first_node_and_a_nodes_daemons_together(
        monkeypatch):
    from bench.engine import cpu
    monkeypatch.setattr(cpu, "PINNED_CPUS", (0, 1))
    labels = ["controller@openflow", "ovs-vswitchd@node1", "ovsdb-server@node1",
              "ovs-vswitchd@node2", "ovsdb-server@node2"]
    placed = cpu.daemon_cpus(labels, 7)
    assert placed["ovs-vswitchd@node1"] == placed["ovsdb-server@node1"] == 1
    assert placed["ovs-vswitchd@node2"] == placed["ovsdb-server@node2"] == 0


@pytest.mark.skipif((__import__("os").cpu_count() or 1) < 2, reason="needs two CPUs")
def test_place_pins_every_thread_and_releases_them():
    import os
    import subprocess
    import sys

    from bench.engine import cpu
    child = subprocess.Popen([sys.executable, "-c",
                              "import threading, time\n"
                              "threading.Thread(target=time.sleep, args=(30,)).start()\n"
                              "time.sleep(30)"])
    try:
        while len(os.listdir(f"/proc/{child.pid}/task")) < 2:  # both threads started
            pass
        cpu.place({"x@node1": child.pid}, {"x@node1": 0})
        tids = [int(t) for t in os.listdir(f"/proc/{child.pid}/task")]
        assert all(os.sched_getaffinity(t) == {0} for t in tids)
        cpu.place({"x@node1": child.pid}, None)
        assert all(os.sched_getaffinity(t) == set(range(os.cpu_count())) for t in tids)
        cpu.place({"gone@node1": 2 ** 22 + 1}, {"gone@node1": 0})  # no such process: no error
    finally:
        child.kill()
        child.wait()


DUAL_STATE = {
    "nodes": {"node1": {"ip": "192.168.1.11", "ip_v6": "fd00:192:168:1::11", "pid": 1},
              "node2": {"ip": "192.168.1.12", "ip_v6": "fd00:192:168:1::12", "pid": 2}},
    "pods": {"default/a": {"node": "node1", "ip": "10.244.0.2",
                           "ips": ["10.244.0.2", "fd00:10:244::2"]},
             "default/b": {"node": "node2", "ip": "10.244.1.2",
                           "ips": ["10.244.1.2", "fd00:10:244:1::2"]}},
}


def test_paths_are_realised_over_the_addresses_of_the_family_asked():
    data = state_from(DUAL_STATE)
    client, server = endpoints(BY_NAME["pod-cross-node"], data, 6)
    assert (client.ip, server.ip) == ("fd00:10:244::2", "fd00:10:244:1::2")
    assert endpoints(BY_NAME["pod-cross-node"], data)[1].ip == "10.244.1.2"
    assert endpoints(BY_NAME["node-node"], data, 6)[1].ip == "fd00:192:168:1::12"
    plain = state_from({"nodes": {"node1": {"ip": "192.168.1.11"},
                                  "node2": {"ip": "192.168.1.12"}}})
    with pytest.raises(NotApplicable, match="node node1 has no IPv6 address"):
        endpoints(BY_NAME["node-node"], plain, 6)


def test_a_dual_run_names_its_ipv6_flows_and_finds_their_clusters():
    assert family_label("vxlan", 6, (4, 6)) == "vxlan-ipv6"
    assert family_label("vxlan", 4, (4, 6)) == "vxlan"
    assert family_label("vxlan", 6, (6,)) == "vxlan"  # an IPv6 run keeps the modes' names
    assert cluster_label("vxlan-ipv6") == "vxlan" and cluster_label("bare-ipv6") == "bare"
    with pytest.raises(TestbedError, match="unknown family ipv5"):
        prepare_spec(Options(family="ipv5"))
