"""Tool adapters on outputs recorded from real runs (iperf3 3.12, sockperf 3.7, iputils ping)."""
import json
from pathlib import Path

import pytest

from bench.tools.iperf3 import parse_tcp_json, parse_udp_json
from bench.tools.ping import parse_ping
from bench.tools.sockperf import parse_pingpong
from bench.tools.tool import ToolError

DATA = Path(__file__).parents[1] / "data"


def read(name):
    return (DATA / name).read_text()


def test_iperf3_tcp_gives_receiver_rate_and_bytes():
    doc = json.loads(read("iperf3_tcp_ok.json"))
    out = parse_tcp_json(read("iperf3_tcp_ok.json"))
    assert out["gbps"] == doc["end"]["sum_received"]["bits_per_second"] / 1e9
    assert out["bytes"] == doc["end"]["sum_received"]["bytes"] > 0


def test_iperf3_udp_gives_rate_loss_and_jitter():
    out = parse_udp_json(read("iperf3_udp_ok.json"))
    assert 0.45 < out["gbps"] < 0.51  # offered 500M on loopback
    assert out["loss_pct"] == 0 and out["jitter_ms"] > 0 and out["bytes"] == 62458200


@pytest.mark.parametrize("name, message", [
    ("iperf3_refused.json", "unable to connect to server: Connection refused"),
    ("iperf3_busy.json", "the server is busy running a test"),
])
def test_iperf3_errors_raise_with_its_message(name, message):
    for parse in (parse_tcp_json, parse_udp_json):
        with pytest.raises(ToolError, match=message):
            parse(read(name))


def test_iperf3_non_json_output_is_a_tool_error_not_a_zero():
    with pytest.raises(ToolError, match="no JSON"):
        parse_tcp_json("iperf3: error - unable to send control message: Bad file descriptor\n")


@pytest.mark.parametrize("name", ["sockperf_tcp_ok.txt", "sockperf_udp_ok.txt"])
def test_sockperf_percentiles(name):
    out = parse_pingpong(read(name))
    assert 0 < out["p50_us"] <= out["p99_us"]
    assert out["avg_us"] > 0


def test_sockperf_tcp_values_match_the_recording():
    out = parse_pingpong(read("sockperf_tcp_ok.txt"))
    assert (out["p50_us"], out["p99_us"]) == (10.596, 18.078)


def test_sockperf_refused_exits_zero_but_is_a_failure():
    with pytest.raises(ToolError, match="Can`t connect socket \\(errno=111 Connection refused\\)"):
        parse_pingpong(read("sockperf_tcp_refused.txt"))


def test_ping_rtts_and_loss():
    out = parse_ping(read("ping_ok.txt"))
    assert out["loss_pct"] == 0
    # the largest in the recording is 0.057, which ping rounded from up to 0.0575
    assert 0 < out["rtt_p50_ms"] <= out["rtt_p99_ms"] <= 0.0575
    assert abs(out["rtt_avg_ms"] - 0.034) < 0.002


@pytest.mark.parametrize("name, words", [
    ("ping_no_reply.txt", "3 packets transmitted, 0 received"),
    ("ping_unreachable.txt", "Network is unreachable"),
])
def test_ping_without_replies_is_a_failure(name, words):
    with pytest.raises(ToolError, match=words):
        parse_ping(read(name))


def test_rr_probe_turn_is_reported_as_half_round_trips_in_us():
    from bench.tools.rrprobe import parse_turn
    out = parse_turn("5624 0 16441 29155 17697\n")  # a real turn: one CPU, veth pair
    assert out["round_trips"] == 5624 and out["lost"] == 0
    assert out["p50_us"] == pytest.approx(8.2205) and out["p99_us"] == pytest.approx(14.5775)
    assert out["avg_us"] == pytest.approx(8.8485)


@pytest.mark.parametrize("line, message", [
    ("0 12 0 0 0\n", "no response in the turn (12 requests lost)"),
    ("rr-probe: connect: Connection refused\n", "unexpected output"),
    ("", "unexpected output"),
])
def test_rr_probe_turn_without_answers_is_a_failure(line, message):
    from bench.tools.rrprobe import parse_turn
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_turn(line)
