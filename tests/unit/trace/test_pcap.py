"""Reading tcpdump's -i any captures: SLL2 frames decoded down to the probe's flow, through
VXLAN and flannel udp's datagrams, and ICMP errors with the packet they quote."""
import struct

import pytest

from testbed.trace import pcap


def ipv4(src, dst, proto, body, ttl=64):
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, ttl, proto, 0,
                         bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return header + body


def tcp(sport, dport, flags):
    return struct.pack(">HHIIBBHHH", sport, dport, 0, 0, 0x50, flags, 65535, 0, 0)


def udp(sport, dport, payload=b""):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def vxlan(vni, inner, dst_mac=b"\xf2\x63\xe0\xca\x1e\xc5"):
    ethernet = dst_mac + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return struct.pack(">B3xI", 0x08, vni << 8) + ethernet + inner


def sll2(ifindex, pkttype, packet):
    return struct.pack(">HHIHBB8s", 0x0800, 0, ifindex, 1, pkttype, 6, b"\0" * 8) + packet


def write_pcap(path, frames, nano=True):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    data = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, pcap.LINKTYPE_LINUX_SLL2)
    for i, frame in enumerate(frames):
        data += struct.pack("<IIII", 100, i * 1000, len(frame), len(frame)) + frame
    path.write_bytes(data)


SYN = ipv4("10.244.0.2", "10.244.1.2", 6, tcp(40000, 8080, 0x02))


def test_a_plain_syn_is_read_with_its_interface_and_direction(tmp_path):
    write_pcap(tmp_path / "a.pcap", [sll2(7, 4, SYN), sll2(3, 0, SYN)])
    seen = pcap.sightings(str(tmp_path / "a.pcap"), "node1")
    assert [(s.ifindex, s.direction) for s in seen] == [(7, "out"), (3, "in")]
    assert seen[0].packet.flow == pcap.Flow("TCP", "10.244.0.2", 40000, "10.244.1.2", 8080)
    assert seen[0].packet.info == "SYN" and seen[0].packet.ttl == 64
    assert seen[1].time == pytest.approx(100 + 1e-6)  # nanosecond stamps


def test_vxlan_is_opened_to_the_inner_flow_with_its_vni_and_outer_addresses(tmp_path):
    outer = ipv4("192.168.1.11", "192.168.1.12", 17, udp(51000, 8472, vxlan(1, SYN)))
    write_pcap(tmp_path / "v.pcap", [sll2(2, 4, outer)])
    (seen,) = pcap.sightings(str(tmp_path / "v.pcap"), "node1")
    assert seen.packet.flow.dport == 8080 and seen.outer.flow.dport == 8472
    assert (seen.outer.flow.src, seen.outer.flow.dst) == ("192.168.1.11", "192.168.1.12")
    assert seen.tunnel == {"kind": "vxlan", "vni": 1, "inner_dst_mac": "f2:63:e0:ca:1e:c5"}


def test_flannel_udp_datagrams_carry_the_bare_ip_packet(tmp_path):
    outer = ipv4("192.168.1.11", "192.168.1.12", 17, udp(8285, 8285, SYN))
    write_pcap(tmp_path / "u.pcap", [sll2(2, 4, outer)], nano=False)
    (seen,) = pcap.sightings(str(tmp_path / "u.pcap"), "node1")
    assert seen.tunnel == {"kind": "flannel-udp"} and seen.packet.flow.sport == 40000


def test_an_icmp_error_quotes_the_packet_it_is_about():
    quoted = ipv4("10.244.0.2", "10.244.1.2", 17, udp(40000, 9))
    error = ipv4("10.244.1.2", "10.244.0.2", 1, struct.pack(">BBHI", 3, 3, 0, 0) + quoted)
    packet, outer, _ = pcap.decode(error)
    assert outer is None and packet.info == "port unreachable"
    assert packet.quoted.flow == pcap.Flow("UDP", "10.244.0.2", 40000, "10.244.1.2", 9)


def test_an_echo_uses_its_identifier_as_both_ports():
    echo = ipv4("10.244.0.2", "10.244.1.2", 1, struct.pack(">BBHHH", 8, 0, 0, 33333, 1))
    packet, _, _ = pcap.decode(echo)
    assert packet.flow.sport == packet.flow.dport == 33333 and packet.icmp_type == 8


def test_an_empty_capture_is_nothing_seen_and_other_files_are_refused(tmp_path):
    (tmp_path / "empty.pcap").write_bytes(b"")
    assert pcap.read(str(tmp_path / "empty.pcap")) == []
    (tmp_path / "text.pcap").write_bytes(b"not a capture at all, just words")
    with pytest.raises(ValueError, match="not a pcap file"):
        pcap.read(str(tmp_path / "text.pcap"))


def ipv6(src, dst, proto, body, hops=64):
    import ipaddress
    return struct.pack(">IHBB", 6 << 28, len(body), proto, hops) + \
        ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + body


def vxlan6(vni, inner):
    ethernet = b"\xf2\x63\xe0\xca\x1e\xc5" + b"\x02\x00\x00\x00\x00\x01" + b"\x86\xdd"
    return struct.pack(">B3xI", 0x08, vni << 8) + ethernet + inner


def sll2_v6(ifindex, pkttype, packet):
    return struct.pack(">HHIHBB8s", 0x86DD, 0, ifindex, 1, pkttype, 6, b"\0" * 8) + packet


def test_ipv6_frames_are_read_and_decoded_with_their_hop_limit(tmp_path):
    syn = ipv6("fd00:10:244::2", "fd00:10:244:2::2", 6, tcp(40000, 80, 0x02), hops=63)
    path = tmp_path / "c.pcap"
    write_pcap(path, [sll2_v6(3, 4, syn)])
    (seen,) = pcap.sightings(str(path), "node1")
    assert seen.packet.flow == pcap.Flow("TCP", "fd00:10:244::2", 40000, "fd00:10:244:2::2", 80)
    assert (seen.packet.ttl, seen.packet.info, seen.direction) == (63, "SYN", "out")


def test_ipv6_inside_vxlan_over_either_family():
    inner = ipv6("fd00:10:244::2", "fd00:10:244:1::2", 17, udp(40000, 53))
    # flannel-v6.1: IPv6 in IPv6
    outer6 = ipv6("fd00:192:168:1::11", "fd00:192:168:1::12", 17, udp(50000, 8472,
                                                                         vxlan6(1, inner)))
    packet, outer, tunnel = pcap.decode(outer6)
    assert packet.flow.dst == "fd00:10:244:1::2" and outer.flow.dst == "fd00:192:168:1::12"
    assert tunnel["vni"] == 1
    # Cilium's tunnel: IPv6 in IPv4
    outer4 = ipv4("192.168.1.11", "192.168.1.12", 17, udp(50000, 8472, vxlan6(256, inner)))
    packet, outer, tunnel = pcap.decode(outer4)
    assert packet.flow.src == "fd00:10:244::2" and outer.flow.src == "192.168.1.11"
    assert tunnel["vni"] == 256


def test_icmpv6_echo_errors_and_neighbour_discovery():
    echo = ipv6("fd00::1", "fd00::2", 58, struct.pack(">BBHHH", 128, 0, 0, 4242, 1))
    packet = pcap.decode_ip(echo)
    assert (packet.flow.protocol, packet.flow.sport, packet.info, packet.icmp_type) == \
        ("ICMP", 4242, "echo request", 8)  # ICMP's numbering, as the tracer reads it
    quoted = ipv6("fd00::2", "fd00::9", 17, udp(40000, 53))
    error = pcap.decode_ip(ipv6("fd00::1", "fd00::2", 58,
                                struct.pack(">BBHI", 1, 4, 0, 0) + quoted))
    assert (error.info, error.icmp_type) == ("port unreachable", 3)
    assert error.quoted.flow.dport == 53
    solicitation = pcap.decode_ip(ipv6("fd00::2", "ff02::1:ff00:1", 58,
                                       struct.pack(">BBHI16s", 135, 0, 0, 0, bytes(16))))
    assert solicitation.info == "neighbour solicitation" and solicitation.flow.sport == 0
