"""The tests a benchmark runs on each path, each with the real tool that measures it."""
import os
from dataclasses import dataclass
from typing import Callable

from . import iperf3, ping, sockperf

IP_UDP_HEADERS = 28
PING_INTERVAL = 0.005  # root may ping faster than every 0.2 s
OMIT_S = 1  # iperf3 -O: slow start is run but left out of each throughput sample
# client on core 0, server on core 1 where there are two cores (iperf3 -A)
PINNED_CPUS = (0, 1) if (os.cpu_count() or 1) >= 2 else None


@dataclass(frozen=True)
class Measure:
    name: str
    title: str
    moves_bytes: bool    # CPU cost is reported per GB moved only for these
    run: Callable        # (client, server, options, mtu) -> metrics dict
    seconds: Callable    # (options) -> expected duration, for the progress estimate
    sliced: bool = False   # measured in time-sliced turns (slicing.py), not whole runs
    share: float = 1.0     # of the run's cycles (--slices if sliced, else --repeats)


def _tcp1(client, server, opt, mtu):
    return iperf3.tcp(server.argv, client.argv, server.ip, opt.duration, streams=1,
                      omit=OMIT_S, cpus=PINNED_CPUS)


def _tcpn(client, server, opt, mtu):
    return iperf3.tcp(server.argv, client.argv, server.ip, opt.duration, streams=opt.streams,
                      omit=OMIT_S, cpus=PINNED_CPUS)


def _udp(client, server, opt, mtu):
    # datagrams that fit the path MTU: fragmented UDP would measure reassembly, not the mode
    # no -O here: UDP has no slow start, and iperf3 3.12 miscounts UDP loss with --omit
    # (it reported more than 100 % lost)
    return iperf3.udp(server.argv, client.argv, server.ip, opt.duration, opt.udp_rate,
                      mtu - IP_UDP_HEADERS, omit=0, cpus=PINNED_CPUS)


def _tcp_rr(client, server, opt, mtu):
    return sockperf.pingpong(server.argv, client.argv, server.ip, opt.rr_duration, "tcp")


def _udp_rr(client, server, opt, mtu):
    return sockperf.pingpong(server.argv, client.argv, server.ip, opt.rr_duration, "udp")


def _icmp(client, server, opt, mtu):
    return ping.icmp_rtt(client.argv, server.ip, count=opt.ping_count, interval=PING_INTERVAL)


MEASURES = (
    Measure("tcp-1", "TCP throughput, 1 stream (iperf3)", True, _tcp1,
            lambda o: o.duration + OMIT_S + 1, sliced=True),
    Measure("tcp-n", "TCP throughput, N streams (iperf3 -P)", True, _tcpn,
            lambda o: o.duration + OMIT_S + 1, sliced=True, share=1 / 3),
    Measure("udp", "UDP throughput and loss at an offered rate (iperf3 -u)", True, _udp,
            lambda o: o.duration + 1, share=2 / 3),
    Measure("tcp-rr", "TCP request/response latency (sockperf ping-pong)", False, _tcp_rr,
            lambda o: o.rr_duration + 0.4),
    Measure("udp-rr", "UDP request/response latency (sockperf ping-pong)", False, _udp_rr,
            lambda o: o.rr_duration + 0.4),
    Measure("icmp", "ICMP round-trip time (ping)", False, _icmp,
            lambda o: o.ping_count * PING_INTERVAL + 0.2),
)
BY_NAME = {m.name: m for m in MEASURES}
# what a run measures unless told otherwise; udp-rr adds little beside tcp-rr and icmp, and
# leaving it out keeps the default run of every mode within ten minutes
DEFAULT_TESTS = ("tcp-1", "tcp-n", "udp", "tcp-rr", "icmp")

UNITS = {
    "gbps": "Gbit/s", "bytes": "B", "retransmits": "segments", "loss_pct": "%",
    "jitter_ms": "ms", "p50_us": "µs", "p99_us": "µs", "avg_us": "µs",
    "rtt_p50_ms": "ms", "rtt_p99_ms": "ms", "rtt_avg_ms": "ms",
    "cpu_s": "CPU s", "cpu_s_per_gb": "CPU s/GB", "steal_s": "CPU s",
}


def unit_of(metric):
    if metric.startswith("daemon_cpu_s_per_gb"):
        return "CPU s/GB"
    if metric.startswith("daemon_cpu_s"):
        return "CPU s"
    return UNITS.get(metric, "")
