"""Reading what tcpdump wrote: pcap files of `-i any` captures (link type LINUX_SLL2, which names
the interface and the direction of every packet), decoded down to the probe's own flow even
inside VXLAN (flannel's port 8472, or IANA's 4789) and flannel udp's datagrams (port 8285).
IPv4 and IPv6 alike, either family inside a tunnel of either family (flannel-v6.1 wraps IPv6 in
IPv6; Cilium's and Antrea's tunnels may wrap IPv6 in IPv4). ICMPv6 is named ICMP, as its echo
and errors play ICMP's part in a trace."""
import ipaddress
import struct
from dataclasses import dataclass, field

LINKTYPE_LINUX_SLL2 = 276
VXLAN_PORTS = (8472, 4789)
FLANNEL_UDP_PORT = 8285
# SLL2's packet types: the direction a packet took on its interface
DIRECTIONS = {0: "in", 1: "in", 2: "in", 3: "in", 4: "out"}
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMP"}
IPV4_TYPE, IPV6_TYPE = 0x0800, 0x86DD  # ethertypes
UNREACHABLE = {0: "net unreachable", 1: "host unreachable", 3: "port unreachable",
               4: "fragmentation needed", 9: "net administratively prohibited",
               10: "host administratively prohibited", 13: "administratively prohibited"}
# ICMPv6's destination unreachable codes (type 1), and its other messages a trace meets
UNREACHABLE_V6 = {0: "no route", 1: "administratively prohibited", 3: "address unreachable",
                  4: "port unreachable", 5: "source address failed policy",
                  6: "reject route"}
ICMP6_TYPES = {2: "packet too big", 3: "time exceeded", 133: "router solicitation",
               134: "router advertisement", 135: "neighbour solicitation",
               136: "neighbour advertisement"}
# an echo's and an error's types, in the ICMP numbering the tracer reads (8, 0, 3, 11)
ICMP6_AS_ICMP = {128: 8, 129: 0, 1: 3, 3: 11}
TCP_FLAGS = ((0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"))


@dataclass(frozen=True)
class Flow:
    """A packet's five-tuple (ICMP: its echo identifier in place of both ports)."""
    protocol: str
    src: str
    sport: int
    dst: str
    dport: int


@dataclass
class Packet:
    """One IP packet as decoded: its flow, TTL (IPv6: hop limit), and what it says (flags,
    ICMP type, ICMPv6's given in ICMP's numbers: echo 8 and 0, errors 3 and 11)."""
    flow: Flow
    ttl: int
    info: str
    icmp_type: int | None = None
    quoted: "Packet | None" = None   # the packet an ICMP error is about


@dataclass
class Sighting:
    """A packet seen on one interface of one namespace, at one moment."""
    time: float
    where: str                   # the namespace's label (a pod, node, rack or router)
    ifindex: int
    direction: str               # "in" or "out"
    packet: Packet               # the innermost packet (the probe's own flow)
    outer: Packet | None = None  # the tunnel's packet, when the probe was inside one
    tunnel: dict = field(default_factory=dict)  # {"kind": "vxlan", "vni": 1, ...}
    interface: str = ""          # filled from the namespace's ifindex -> name


def read(path: str) -> list[tuple[float, int, str, bytes]]:
    """(time, ifindex, direction, IP bytes) of each IPv4 or IPv6 packet of an SLL2 pcap
    file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []  # tcpdump stopped before writing its header: nothing seen
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
             b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if order is None:
        raise ValueError(f"{path}: not a pcap file")
    scale = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0xFFFF
    if linktype != LINKTYPE_LINUX_SLL2:
        raise ValueError(f"{path}: link type {linktype}, expected LINUX_SLL2 (tcpdump -i any)")
    out, offset = [], 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(order + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        if len(frame) < 20:
            continue
        protocol, _, ifindex, _, pkttype = struct.unpack(">HHIHB", frame[:11])
        if protocol in (IPV4_TYPE, IPV6_TYPE):
            out.append((sec + frac * scale, ifindex, DIRECTIONS.get(pkttype, "in"), frame[20:]))
    return out


def _header(raw: bytes) -> tuple[str, str, int, int, bytes] | None:
    """(src, dst, ttl or hop limit, protocol, payload) of the IPv4 or IPv6 packet at the
    start of `raw`; IPv6 extension headers are not walked (their next header is named)."""
    if len(raw) >= 40 and raw[0] >> 4 == 6:
        src, dst = ipaddress.IPv6Address(raw[8:24]), ipaddress.IPv6Address(raw[24:40])
        return str(src), str(dst), raw[7], raw[6], raw[40:]
    if len(raw) >= 20 and raw[0] >> 4 == 4:
        ihl = (raw[0] & 0x0F) * 4
        src, dst = ipaddress.IPv4Address(raw[12:16]), ipaddress.IPv4Address(raw[16:20])
        return str(src), str(dst), raw[8], raw[9], raw[ihl:]
    return None


def decode_ip(raw: bytes) -> Packet | None:
    """The IP packet at the start of `raw` (a snapped capture: headers are enough)."""
    header = _header(raw)
    return _packet(*header) if header is not None else None


def _packet(src: str, dst: str, ttl: int, proto: int, body: bytes) -> Packet:
    """The packet of a parsed IP header and what follows it."""
    name = PROTOCOLS.get(proto, f"proto {proto}")
    if proto == 58 and len(body) >= 8:
        return _icmp6(src, dst, ttl, body)
    if proto in (6, 17) and len(body) >= 4:
        sport, dport = struct.unpack(">HH", body[:4])
        info = ""
        if proto == 6 and len(body) >= 14:
            info = ",".join(label for bit, label in TCP_FLAGS if body[13] & bit)
        return Packet(Flow(name, src, sport, dst, dport), ttl, info)
    if proto == 1 and len(body) >= 8:
        kind, code, ident = body[0], body[1], struct.unpack(">H", body[4:6])[0]
        if kind in (0, 8):
            flow = Flow(name, src, ident, dst, ident)
            return Packet(flow, ttl, "echo reply" if kind == 0 else "echo request", kind)
        quoted = decode_ip(body[8:])
        info = {3: UNREACHABLE.get(code, f"unreachable (code {code})"),
                11: "time exceeded"}.get(kind, f"type {kind}")
        return Packet(Flow(name, src, 0, dst, 0), ttl, info, kind, quoted)
    return Packet(Flow(name, src, 0, dst, 0), ttl, "")


def _icmp6(src: str, dst: str, ttl: int, body: bytes) -> Packet:
    """An ICMPv6 message: an echo as ICMP's (its identifier for both ports), an error with
    the packet it quotes, neighbour discovery named."""
    kind, code, ident = body[0], body[1], struct.unpack(">H", body[4:6])[0]
    as_icmp = ICMP6_AS_ICMP.get(kind)
    if kind in (128, 129):
        flow = Flow("ICMP", src, ident, dst, ident)
        return Packet(flow, ttl, "echo reply" if kind == 129 else "echo request", as_icmp)
    if kind in (1, 2, 3):
        info = UNREACHABLE_V6.get(code, f"unreachable (code {code})") if kind == 1 else \
            ICMP6_TYPES[kind]
        return Packet(Flow("ICMP", src, 0, dst, 0), ttl, info, as_icmp, decode_ip(body[8:]))
    return Packet(Flow("ICMP", src, 0, dst, 0), ttl, ICMP6_TYPES.get(kind, f"type {kind}"))


def decode(raw: bytes) -> tuple[Packet | None, Packet | None, dict]:
    """(innermost packet, outer packet or None, tunnel facts) of a captured IP packet."""
    header = _header(raw)
    if header is None:
        return None, None, {}
    outer = _packet(*header)
    if outer.flow.protocol != "UDP":
        return outer, None, {}
    payload = header[4][8:]  # the UDP datagram's payload
    if outer.flow.dport in VXLAN_PORTS and len(payload) >= 8 + 14 + 20 and payload[0] & 0x08:
        vni = int.from_bytes(payload[4:7], "big")
        ethertype = struct.unpack(">H", payload[20:22])[0]
        inner = decode_ip(payload[22:]) if ethertype in (IPV4_TYPE, IPV6_TYPE) else None
        if inner is not None:
            return inner, outer, {"kind": "vxlan", "vni": vni,
                                  "inner_dst_mac": payload[8:14].hex(":")}
    if outer.flow.dport == FLANNEL_UDP_PORT:
        inner = decode_ip(payload)
        if inner is not None:
            return inner, outer, {"kind": "flannel-udp"}
    return outer, None, {}


def sightings(path: str, where: str) -> list[Sighting]:
    """Every IP packet of one namespace's capture, decoded."""
    out = []
    for when, ifindex, direction, raw in read(path):
        packet, outer, tunnel = decode(raw)
        if packet is not None:
            out.append(Sighting(when, where, ifindex, direction, packet, outer, tunnel))
    return out
