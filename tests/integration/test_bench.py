"""The benchmark on real clusters: a smoke run of every mode, faults, Ctrl-C, plots."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.engine import harness
from bench.engine.paths import endpoints as real_endpoints
from testbed.host import netns
from testbed.modes import mode_names

from .conftest import REPO, TOPO, Footprint, run_testbed

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# the least run that still has every field: two sessions of one cycle of 50 ms turns
SMOKE = ["--repeats", "1", "--sessions", "2", "--slices", "2", "--slice-ms", "50",
         "--duration", "1", "--tests", "all"]
CONTROLS = {"vxlan-again", "host-gw-mtu1450", "udp-mtu1450"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    out = tmp_path_factory.mktemp("results")
    before = Footprint()
    proc = run_testbed("bench", "--topo", TOPO / "default.yaml", "--out", out, *SMOKE,
                       timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    runs = list(out.iterdir())
    assert len(runs) == 1
    return runs[0], proc, before


def test_smoke_run_writes_every_field(smoke_run):
    run_dir, proc, _ = smoke_run
    machine = json.loads((run_dir / "machine.json").read_text())
    for key in ("kernel", "cpu_model", "cores", "tools", "datapaths", "commit", "options"):
        assert machine[key], key
    assert set(machine["tools"]) >= {"iperf3", "rr-probe", "ping", "mininet"}
    assert machine["modes"][0] == "bare" and set(machine["modes"][1:]) == set(mode_names())
    assert machine["datapaths"]["vxlan"].startswith("kernel")

    samples = json.loads((run_dir / "samples.json").read_text())
    seen = {(s["mode"], s["path"], s["test"]) for s in samples}
    tests = {"tcp-1", "tcp-n", "udp", "tcp-rr", "udp-rr", "icmp"}
    for mode in mode_names():
        for path in ("pod-same-node", "pod-cross-node"):
            assert {t for m, p, t in seen if (m, p) == (mode, path)} == tests
    assert {t for m, p, t in seen if (m, p) == ("bare", "node-node")} == tests
    assert all(s["ok"] for s in samples), [s["error"] for s in samples if not s["ok"]]
    by = {(s["mode"], s["path"], s["test"]): s["metrics"] for s in samples}
    tcp = by[("vxlan", "pod-cross-node", "tcp-1")]
    assert tcp["gbps"] > 0.1 and tcp["cpu_s_per_gb"] > 0 and tcp["bytes"] > 0
    rr = by[("vxlan", "pod-cross-node", "tcp-rr")]
    assert 0 < rr["p50_us"] <= rr["p99_us"]
    assert by[("bare", "node-node", "udp")]["loss_pct"] >= 0

    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["metric"] for r in rows} >= {"gbps", "p50_us", "p99_us", "rtt_p50_ms",
                                          "cpu_s_per_gb", "loss_pct"}
    assert len({(r["mode"], r["path"], r["test"]) for r in rows}) == len(seen)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    ratios = [r for r in summary["rows"] if r.get("ratio_to_bare")]
    assert {r["mode"] for r in ratios} == set(mode_names()) | {"bare-again"} | CONTROLS
    assert {"mode": "vxlan", "path": "pod-cross-rack",
            "reason": "the topology has a single rack"} in summary["not_applicable"]
    assert "ratio to the bare underlay" in proc.stdout and "vxlan" in proc.stdout
    # paired comparisons: every mode against bare and every pair on a path, with verdicts
    found = summary["comparisons"]
    keys = {"path", "test", "metric", "mode_a", "mode_b", "ratio", "ci_low", "ci_high",
            "verdict"}
    assert found and all(keys <= set(c) for c in found)
    assert all(c["ci_low"] <= c["ratio"] <= c["ci_high"] and
               c["verdict"] in ("same", "higher", "lower") for c in found)
    assert {c["mode_a"] for c in found if c["mode_b"] == "bare"} == \
        set(mode_names()) | {"bare-again"} | CONTROLS  # the A/A controls against bare too
    assert any(c["mode_b"] != "bare" for c in found)
    assert all(c["sessions"] == 2 and c["next_low"] < c["ci_low"] for c in found
               if c["mode_b"] == "bare")  # intervals over the two sessions
    # a noise floor per path: the bare path twice, vxlan built twice on both pod paths
    assert {(f["path"], f["test"], f["metric"]) for f in summary["noise_floor"]} >= {
        (p, t, m) for p in ("node-node", "pod-same-node", "pod-cross-node")
        for t, m in (("tcp-1", "gbps"), ("tcp-rr", "p50_us"), ("icmp", "rtt_p50_ms"))}
    aa = [c for c in found if {c["mode_a"], c["mode_b"]} == {"vxlan", "vxlan-again"}]
    assert {c["path"] for c in aa} == {"pod-same-node", "pod-cross-node"}
    assert all(c["aa_control"] for c in aa)
    assert "paired comparisons:" in proc.stdout and "noise floor" in proc.stdout
    pairs = [s for s in samples if s["mode"] == "vxlan" and s["test"] == "tcp-1"]
    assert all(s["baseline"]["gbps"] > 0 for s in pairs)  # each turn beside bare turns
    # sessions of fresh processes, each placed on two CPUs, swapped from one to the next
    sliced = [s for s in samples if s["test"] != "udp"]
    assert {s["session"] for s in sliced} == {1, 2}
    assert {tuple(s["placement"]) for s in sliced if s["test"] == "tcp-1" and
            s["session"] == 1} == {(0, 1)}
    assert {tuple(s["placement"]) for s in sliced if s["test"] == "tcp-1" and
            s["session"] == 2} == {(1, 0)}
    # the modes' daemons pinned in the session's placement, recorded per sample; the
    # sessions 1-2 of the cycle put them all on CPU 0
    forwarders = [s for s in sliced if s["mode"] == "udp"]
    assert forwarders and all(s["daemon_cpus"] == {"forwarder@node1": 0, "forwarder@node2": 0}
                              for s in forwarders)
    assert not any("daemon_cpus" in s for s in samples if s["mode"] in ("bare", "vxlan"))
    # the controls: in tcp-1, tcp-rr and icmp only; the equal-MTU ones on one node, at
    # vxlan's pod MTU
    assert machine["controls"]["host-gw-mtu1450"] == {
        "mode": "host-gw", "paths": ["pod-same-node"], "pod_mtu": 1450}
    assert machine["controls"]["udp-mtu1450"]["pod_mtu"] == 1450
    assert {t for m, p, t in seen if m in CONTROLS} == {"tcp-1", "tcp-rr", "icmp"}
    assert {p for m, p, t in seen if m == "udp-mtu1450"} == {"pod-same-node"}
    assert {p for m, p, t in seen if m == "vxlan-again"} == {"pod-same-node", "pod-cross-node"}


def test_smoke_run_plots_are_real_images_and_cleanup_is_complete(smoke_run):
    run_dir, _, before = smoke_run
    for name in ("throughput", "latency", "cpu", "ratio"):
        png = (run_dir / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 20000, name
        assert (run_dir / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    assert Footprint().leftovers(before) == []


def test_plot_compares_two_runs(smoke_run, tmp_path):
    run_dir, _, _ = smoke_run
    twin = tmp_path / "twin"
    subprocess.run(["cp", "-r", str(run_dir), str(twin)], check=True)
    proc = run_testbed("plot", run_dir, twin, check=True)
    compare = [line for line in proc.stdout.splitlines() if line.endswith("compare.png")]
    assert compare and open(compare[0], "rb").read().startswith(PNG_MAGIC)


def test_a_failing_tool_marks_its_sample_and_the_run_goes_on(tmp_path, monkeypatch, require):
    require("vxlan", "iptables")

    def endpoints_with_a_firewall(path, data, family=4):
        client, server = real_endpoints(path, data, family)
        if path.name == "pod-cross-node":  # iperf3's ports refuse in the server pod
            netns.run(netns.in_pod(server.netns, [
                "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "5201:5299",
                "-j", "REJECT", "--reject-with", "tcp-reset"]))
        return client, server

    monkeypatch.setattr(harness, "endpoints", endpoints_with_a_firewall)
    opt = harness.Options(topo=str(TOPO / "default.yaml"), modes=["vxlan"],
                          tests=["tcp-1", "icmp"], repeats=1, sessions=3, slices=3,
                          duration=1, out=str(tmp_path), warmup=False, controls=False)
    run_dir, summary, _ = harness.run(opt, progress_stream=open(os.devnull, "w"))
    samples = json.loads((run_dir / "samples.json").read_text())
    failed = [s for s in samples if not s["ok"]]
    assert {(s["path"], s["test"]) for s in failed} == {("pod-cross-node", "tcp-1")}
    assert len(failed) == 3  # each of its turns, one cycle in each of three sessions
    assert "Connection refused" in failed[0]["error"] and failed[0]["metrics"] == {}
    ok = {(s["path"], s["test"]) for s in samples if s["ok"]}
    assert ("pod-cross-node", "icmp") in ok and ("pod-same-node", "tcp-1") in ok
    assert summary["failures"][0]["count"] == 3


def test_ctrl_c_keeps_the_samples_so_far_and_tears_down(tmp_path, require):
    require("vxlan")
    before = Footprint()
    proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "bench", "--topo",
                             str(TOPO / "default.yaml"), "--out", str(tmp_path), "--no-plot",
                             "--repeats", "2", "--slices", "4", "--duration", "1", "--modes",
                             "vxlan"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    jsonl = None
    while time.monotonic() < deadline:
        found = list(tmp_path.glob("*/samples.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 3:
            jsonl = found[0]
            break
        time.sleep(0.1)
    assert jsonl, "the run should have measured a few samples"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    summary = json.loads((jsonl.parent / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["rows"]
    kept = json.loads((jsonl.parent / "samples.json").read_text())
    assert len(kept) >= 3
    assert Footprint().leftovers(before) == []


def test_a_dual_family_run_measures_each_mode_over_both_and_compares_them(tmp_path, require):
    """`--family dual`: one dual-stack cluster per mode, its flows over IPv4 and IPv6
    (<mode>-ipv6), the bare path over both, and IPv6 against IPv4 among the comparisons;
    a mode without IPv6 is left out with the reason."""
    require("vxlan", "bridge", "veth")
    before = Footprint()
    proc = run_testbed("bench", "--topo", TOPO / "default.yaml", "--out", tmp_path,
                       "--family", "dual", "--modes", "vxlan,udp", "--paths", "pod-cross-node",
                       "--sessions", "2", "--slices", "2", "--slice-ms", "50", "--tests",
                       "tcp-1,tcp-rr", "--no-controls", "--no-plot", timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "mode udp left out: ipFamily dual: mode udp cannot build it: flannel's udp " \
        "backend carries IPv4 only" in proc.stdout
    run = next(tmp_path.iterdir())
    samples = json.load(open(run / "samples.json"))
    by_mode = {}
    for s in samples:
        by_mode.setdefault(s["mode"], set()).add(s["server_ip"])
    assert all(":" not in ip for ip in by_mode["vxlan"] | by_mode["bare"])
    assert by_mode["vxlan-ipv6"] and all(ip.startswith("fd00:10:244:")
                                         for ip in by_mode["vxlan-ipv6"])
    assert all(ip.startswith("fd00:192:168:") for ip in by_mode["bare-ipv6"])
    assert all(s["ok"] for s in samples if s["mode"].endswith("-ipv6"))
    pairs = {(c["mode_a"], c["mode_b"], c["test"]) for c in
             json.load(open(run / "summary.json"))["comparisons"]}
    assert ("vxlan", "vxlan-ipv6", "tcp-1") in pairs and ("vxlan", "vxlan-ipv6", "tcp-rr") in pairs
    assert json.load(open(run / "machine.json"))["options"]["family"] == "dual"
    assert Footprint().leftovers(before) == []
