"""The README's results made from one run (bench.plots.readme), without root."""
import json

import pytest

from bench.plots import readme
from testbed.errors import TestbedError


def comparison(a, b, path, test, metric, ratio, verdict="same"):
    return {"mode_a": a, "mode_b": b, "path": path, "test": test, "metric": metric,
            "ratio": ratio, "ci_low": ratio * 0.98, "ci_high": ratio * 1.02, "verdict": verdict}


RUN = {
    "name": "20261207-050000-default",
    "machine": {"cpu_model": "AMD EPYC", "cores": 2, "kernel": "6.18.44", "modes":
                ["bare", "host-gw", "vxlan"], "commit": "0123456789abcdef",
                "options": {"sessions": 6}},
    "summary": {"elapsed_s": 452.0, "comparisons": [
        comparison("vxlan", "bare", "pod-cross-node", "tcp-1", "gbps", 0.71, "lower"),
        comparison("vxlan", "bare", "pod-cross-node", "tcp-rr", "p50_us", 1.8, "higher"),
        comparison("host-gw", "bare", "pod-same-node", "tcp-1", "gbps", 1.0),
        comparison("vxlan", "vxlan-again", "pod-cross-node", "tcp-rr", "p50_us", 1.01),
        comparison("bare-again", "bare", "node-node", "tcp-1", "gbps", 0.99),
        comparison("host-gw-mtu1450", "vxlan", "pod-same-node", "tcp-1", "gbps", 1.02)]},
}


def test_the_section_names_the_run_and_cpu_and_gives_every_ratio_of_that_run():
    text = readme.results_section(RUN, "docs/results/x/ratio.png")
    assert text.startswith(readme.BEGIN) and text.endswith(readme.END)
    assert "`20261207-050000-default`" in text and "AMD EPYC" in text and "7.5 min" in text
    assert "`0123456`" in text and "![ratio to bare](docs/results/x/ratio.png)" in text
    vxlan = next(line for line in text.splitlines() if line.startswith("| vxlan |"))
    assert vxlan == ("| vxlan | – | – | 0.71× [0.70–0.72] lower | 1.80× [1.76–1.84] higher |")
    assert "| host-gw | 1.00× [0.98–1.02] | – | – | – |" in text
    assert "| vxlan / vxlan-again (one mode built twice) | pod-cross-node | – | " \
           "1.01× [0.99–1.03] |" in text
    assert "| host-gw-mtu1450 / vxlan (one pod MTU) | pod-same-node | 1.02× [1.00–1.04] | – |" \
        in text


def test_only_the_part_between_the_markers_is_replaced(tmp_path):
    old = f"# Title\n\nbefore\n{readme.BEGIN}\nold table\n{readme.END}\nafter\n"
    new = readme.replace_section(old, f"{readme.BEGIN}\nnew\n{readme.END}")
    assert new == f"# Title\n\nbefore\n{readme.BEGIN}\nnew\n{readme.END}\nafter\n"
    with pytest.raises(TestbedError, match="README.md: no results markers"):
        readme.replace_section("# no markers\n", "x")


def test_the_command_copies_the_run_and_rewrites_the_readme(tmp_path):
    run = tmp_path / "results" / RUN["name"]
    run.mkdir(parents=True)
    (run / "machine.json").write_text(json.dumps(RUN["machine"]))
    (run / "summary.json").write_text(json.dumps(RUN["summary"]))
    (run / "samples.json").write_text("[]")
    (run / "ratio.png").write_bytes(b"png")
    doc = tmp_path / "README.md"
    doc.write_text(f"x\n{readme.BEGIN}\n{readme.END}\ny\n")
    into = tmp_path / "docs" / "results"
    assert readme.main([str(run), "--readme", str(doc), "--into", str(into)]) == 0
    assert (into / RUN["name"] / "ratio.png").read_bytes() == b"png"
    assert (into / RUN["name"] / "samples.json").exists()
    text = doc.read_text()
    assert f"![ratio to bare](docs/results/{RUN['name']}/ratio.png)" in text
    assert text.startswith("x\n") and text.endswith("\ny\n")
