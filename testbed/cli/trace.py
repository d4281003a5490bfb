"""Verbs that follow packets: trace (where a probe went and where it stopped) and capture
(tcpdump in a pod's or node's namespace, ksniff's job)."""
import argparse
import signal
import subprocess
import sys

from testbed.cli.common import find_run, namespace_option, ranged
from testbed.errors import TestbedError
from testbed.host.signals import Interrupted, signals_interrupt
from testbed.trace import render, tracer
from testbed.trace.capture import tcpdump_argv

FAMILIES = {"ipv4": "IPv4", "ipv6": "IPv6"}  # --family, as bench spells it


def cmd_trace(args: argparse.Namespace) -> int | None:
    """Send one probe SRC -> DST and print each hop the kernel saw it take."""
    state = find_run(args.name)
    family = FAMILIES.get(args.family) if args.family else None
    if family is None and ":" in args.destination:  # an IPv6 address: from IPv6 too
        family = "IPv6"
    source = tracer.resolve(state, args.source, args.namespace, family)
    destination = tracer.resolve(state, args.destination, args.namespace, family)
    with signals_interrupt(signal.SIGINT):  # also when started with SIGINT ignored (a `&` job)
        result = tracer.trace(state, source, destination, args.protocol, args.port)
    print(render.as_json(result) if args.output == "json" else render.text(result))
    return 0 if result.delivered else 1


def cmd_capture(args: argparse.Namespace) -> int | None:
    """tcpdump in one namespace until Ctrl-C (or -c packets): to the terminal, to a pcap file,
    or with -w - as a pcap stream on stdout."""
    state = find_run(args.name)
    name, _, interface = args.target.partition(":")
    target = tracer.resolve(state, name, args.namespace)
    if not target.places or target.service:
        raise TestbedError(f"{args.target}: capture runs in a pod's or node's namespace; "
                           f"{target.name} is neither")
    place = target.places[0]
    argv = tcpdump_argv(place.wrap, args.write, interface or "any", args.filter, args.count)
    proc = subprocess.Popen(argv)
    try:
        with signals_interrupt(signal.SIGINT):
            return proc.wait()
    except (KeyboardInterrupt, Interrupted) as stop:
        # tcpdump may have had the terminal's SIGINT already; SIGTERM (which a `&` job does
        # not ignore) ends it as cleanly, its buffers flushed
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if isinstance(stop, Interrupted) and str(stop) != "SIGINT":
            raise
        print(f"testbed: capture in {place.label} ended", file=sys.stderr)
        return 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """trace, capture"""
    tr = sub.add_parser("trace", help="where a packet goes and why it stops: trace SRC DST")
    tr.add_argument("source", help="pod (NAME or NAMESPACE/NAME), node, router or host")
    tr.add_argument("destination", help="as SRC, or svc/NAME, a ClusterIP or LoadBalancer "
                    "address, or any IPv4 or IPv6 address")
    tr.add_argument("--family", choices=sorted(FAMILIES),
                    help="which address of a named pod, node or Service (default: the "
                    "cluster's primary family; an IPv6 DST: ipv6)")
    tr.add_argument("--port", type=ranged(int, 1, 65535), default=80,
                    help="destination port (tcp, udp; default 80)")
    tr.add_argument("--protocol", choices=["tcp", "udp", "icmp"], default="tcp")
    tr.add_argument("-o", "--output", choices=["text", "json"], default="text")
    namespace_option(tr)
    tr.add_argument("--name", help="cluster name, if several run")
    tr.set_defaults(func=cmd_trace)

    cap = sub.add_parser("capture", help="tcpdump in a pod or node: capture NAME[:IFACE] "
                         "[-w FILE] [FILTER]")
    cap.add_argument("target", help="pod or node, optionally :INTERFACE (default: any)")
    cap.add_argument("filter", nargs="*", help="a tcpdump filter expression")
    cap.add_argument("-w", "--write", metavar="FILE",
                     help="write a pcap file (- : pcap on stdout, for wireshark -k -i -)")
    cap.add_argument("-c", "--count", type=ranged(int, 1, 10**9),
                     help="stop after this many packets")
    namespace_option(cap)
    cap.add_argument("--name", help="cluster name, if several run")
    cap.set_defaults(func=cmd_capture)
