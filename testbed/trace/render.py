"""A trace in words (one line per hop, its notes beneath) or as JSON for scripts."""
import json
from dataclasses import asdict

from testbed.manifests.families import join_host_port as hostport
from testbed.trace.tracer import Hop, Trace


def _packet_text(hop: Hop) -> str:
    f, p = hop.packet.flow, hop.packet
    if f.protocol == "ICMP":
        text = f"{f.src} > {f.dst} ICMP {p.info}"
    else:
        text = f"{hostport(f.src, f.sport)} > {hostport(f.dst, f.dport)} {f.protocol}"
        text += f" {p.info}" if p.info else ""
    return f"{text} ttl {p.ttl}"


def _hop_lines(hops: list[Hop], width: int) -> list[str]:
    lines = []
    for hop in hops:
        lines.append(f"  {hop.number:>2}  {hop.where:<{width}}  {hop.direction:<3} "
                     f"{hop.interface:<15} {_packet_text(hop)}")
        lines += [f"      {'':<{width}}  {note}" for note in hop.notes]
    return lines


def text(trace: Trace) -> str:
    src, dst = trace.source, trace.destination
    lines = [f"trace {src.name} ({src.ip}) -> {dst.name} ({dst.ip}) {trace.protocol}"
             + (f" {trace.port}" if trace.protocol != "ICMP" else "")
             + f", mode {trace.mode}"]
    if trace.probe:
        again = f" (sent {trace.retransmissions + 1} times)" if trace.retransmissions else ""
        lines.append(f"probe: {trace.probe.get('result')} after "
                     f"{trace.probe.get('seconds', 0) * 1000:.1f} ms{again}")
    width = max([len(h.where) for h in trace.hops + trace.reply] + [4])
    if trace.hops:
        lines += ["", f"  {'#':>2}  {'WHERE':<{width}}  DIR INTERFACE       PACKET"]
        lines += _hop_lines(trace.hops, width)
    if trace.reply:
        lines += ["", "  reply:"]
        lines += _hop_lines(trace.reply, width)
    if trace.conntrack:
        lines += ["", "  conntrack (/proc/net/nf_conntrack):"]
        for where, entry in trace.conntrack.items():
            o, r = entry["original"], entry["reply"]
            lines.append(f"    {where}: {entry['protocol']} {entry['state']} "
                         f"{hostport(o['src'], o['sport'])} > {hostport(o['dst'], o['dport'])}, "
                         f"answer expected from {hostport(r['src'], r['sport'])}"
                         + (" [UNREPLIED]" if entry["unreplied"] else ""))
    if trace.policy:
        lines += ["", "  NetworkPolicy, as the policies read (testbed policy check):"]
        lines += [f"    {line}" for line in trace.policy]
    if trace.ingress:
        lines += ["", f"  Ingress {trace.destination.ingress}, as nginx routes it now:"]
        lines += [f"    {line}" for line in trace.ingress]
    lines += ["", ("DELIVERED: " if trace.delivered else "DROPPED: ") + trace.verdict]
    return "\n".join(lines)


def as_json(trace: Trace) -> str:
    out = asdict(trace)
    for side in ("source", "destination"):
        out[side] = {"name": out[side]["name"], "ip": out[side]["ip"],
                     "service": out[side]["service"]}
    return json.dumps(out, indent=2)
