"""The iperf3 adapter on outputs recorded from real runs (iperf3 3.12)."""
import json
from pathlib import Path

import pytest

from bench.iperf3 import ToolError, parse_tcp_json

DATA = Path(__file__).parent / "data"


def test_tcp_run_gives_received_bits_per_second():
    text = (DATA / "iperf3_tcp_ok.json").read_text()
    expected = json.loads(text)["end"]["sum_received"]["bits_per_second"]
    assert parse_tcp_json(text) == expected and expected > 1e8


def test_refused_connection_raises_with_iperf3_message():
    with pytest.raises(ToolError, match="unable to connect to server: Connection refused"):
        parse_tcp_json((DATA / "iperf3_refused.json").read_text())


def test_non_json_output_is_a_tool_error_not_a_zero():
    with pytest.raises(ToolError, match="no JSON"):
        parse_tcp_json("iperf3: error - the server is busy running a test. try again later\n")
