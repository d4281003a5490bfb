"""The tests a benchmark runs on each path, each with the real tool that measures it."""
from dataclasses import dataclass
from typing import Callable, Optional

from bench.engine.cpu import PINNED_CPUS
from bench.engine.slicing import SlicedIperf
from bench.tools import iperf3, ping
from bench.tools.rrprobe import SlicedRR

IP_UDP_HEADERS = 28


@dataclass(frozen=True)
class Measure:
    name: str
    title: str
    moves_bytes: bool    # CPU cost is reported per GB moved only for these
    run: Optional[Callable]  # whole runs: (client, server, options, mtu) -> metrics dict
    seconds: Callable    # (options) -> expected duration of a whole run, for the progress
    # time-sliced tests (slicing.py): (flows, options, (client CPU, server CPU)) -> the tool's
    # session
    session: Optional[Callable] = None
    share: float = 1.0     # of the run's cycles (--slices if sliced, else --repeats)

    @property
    def sliced(self) -> bool:
        return self.session is not None


def _udp(client, server, opt, mtu):
    # datagrams that fit the path MTU: fragmented UDP would measure reassembly, not the mode
    # no -O here: UDP has no slow start, and iperf3 3.12 miscounts UDP loss with --omit
    # (it reported more than 100 % lost)
    return iperf3.udp(server.argv, client.argv, server.ip, opt.duration, opt.udp_rate,
                      mtu - IP_UDP_HEADERS, omit=0, cpus=PINNED_CPUS)


MEASURES = (
    Measure("tcp-1", "TCP throughput, 1 stream (iperf3)", True, None, None,
            session=lambda flows, o, cpus: SlicedIperf(flows, 1, cpus)),
    Measure("tcp-n", "TCP throughput, N streams (iperf3 -P)", True, None, None,
            session=lambda flows, o, cpus: SlicedIperf(flows, o.streams, cpus), share=1 / 3),
    Measure("udp", "UDP throughput and loss at an offered rate (iperf3 -u)", True, _udp,
            lambda o: o.duration + 1, share=2 / 3),
    # a request/response turn varies a third as much as a throughput turn (per-turn SD of the
    # log ratio 4-9 % against 10-17 %), so it takes 0.4 of the cycles for a like interval
    Measure("tcp-rr", "TCP request/response latency (rr-probe)", False, None, None,
            session=lambda flows, o, cpus: SlicedRR(flows, "tcp", cpus), share=0.4),
    Measure("udp-rr", "UDP request/response latency (rr-probe)", False, None, None,
            session=lambda flows, o, cpus: SlicedRR(flows, "udp", cpus), share=0.4),
    Measure("icmp", "ICMP round-trip time (ping)", False, None, None,
            session=lambda flows, o, cpus: ping.SlicedPing(flows, cpus), share=0.4),
)
BY_NAME = {m.name: m for m in MEASURES}
# what a run measures unless told otherwise (`make bench`): the headline, one stream and
# request/response, which keeps a run of every mode with its controls within ten minutes
HEADLINE_TESTS = ("tcp-1", "tcp-rr")
# `--full` (`make bench-full`): the rest too, but udp-rr, which adds little beside tcp-rr and icmp
FULL_TESTS = ("tcp-1", "tcp-n", "udp", "tcp-rr", "icmp")

UNITS = {
    "gbps": "Gbit/s", "bytes": "B", "retransmits": "segments", "loss_pct": "%",
    "jitter_ms": "ms", "p50_us": "µs", "p99_us": "µs", "avg_us": "µs",
    "round_trips": "", "lost": "", "rtt_p50_ms": "ms", "rtt_p99_ms": "ms", "rtt_avg_ms": "ms",
    "cpu_s": "CPU s", "cpu_s_per_gb": "CPU s/GB", "steal_s": "CPU s",
}


def unit_of(metric: str) -> str:
    if metric.startswith("daemon_cpu_s_per_gb"):
        return "CPU s/GB"
    if metric.startswith("daemon_cpu_s"):
        return "CPU s"
    return UNITS.get(metric, "")
