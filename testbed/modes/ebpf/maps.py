"""The ebpf datapath's maps as Python sees them: the byte layout of every key and value (the
structs of native/bpf/datapath.c), the `bpftool batch` lines that write them, and the decoding
of `bpftool -j map dump` for `testbed bpf`.

Addresses and ports are in network order in the maps, as in the packet; everything else is
in the machine's order (little-endian on every machine the testbed runs on). The endpoint and
ipcache keys hold an address of either family as Cilium's do (16 bytes and a family byte);
Services and connections have a set of maps per family (lb4/ct4, lb6/ct6), whose keys and
values differ only in the address's length.
"""
import ipaddress
import json
import socket
import struct
from dataclasses import dataclass

from testbed.host import netns
from testbed.manifests.families import IPV4, IPV6

# the map names (pinned under <pin dir>/maps/), as Cilium names its own
NODE_CONFIG = "cilium_node_config"
ENDPOINTS = "cilium_lxc"
IPCACHE = "cilium_ipcache"
SERVICES = "cilium_lb4_services_v2"
BACKENDS = "cilium_lb4_backends_v3"
REVERSE_NAT = "cilium_lb4_reverse_nat"
SOURCE_RANGES = "cilium_lb4_source_range"
CONNTRACK = "cilium_ct4_global"
METRICS = "cilium_metrics"


@dataclass(frozen=True)
class ServiceMaps:
    """The names of one family's Service and connection maps."""
    services: str
    backends: str
    reverse_nat: str
    source_ranges: str
    conntrack: str


SERVICE_MAPS = {
    IPV4: ServiceMaps(SERVICES, BACKENDS, REVERSE_NAT, SOURCE_RANGES, CONNTRACK),
    IPV6: ServiceMaps("cilium_lb6_services_v2", "cilium_lb6_backends_v3",
                      "cilium_lb6_reverse_nat", "cilium_lb6_source_range", "cilium_ct6_global")}
# the family byte of the endpoint and ipcache keys (Cilium's ENDPOINT_KEY_IPV4/IPV6)
KEY_FAMILY = {4: 1, 6: 2}

PROGRAMS = ("cil_from_container", "cil_from_netdev", "cil_from_overlay", "cil_from_host")
# the reasons of cilium_metrics, in the C enum's order; the key is program * 16 + reason
REASONS = ("to-endpoint", "to-overlay", "to-netdev", "to-stack", "lb", "rev-nat", "arp-reply",
           "from-overlay", "drop: no service backend", "drop: FIB lookup failed",
           "drop: invalid packet", "drop: NAT failed", "reject: no service backend",
           "drop: not in loadBalancerSourceRanges")
METRIC_REASONS = 16

CFG_TUNNEL = 1
SVC_EXTERNAL, SVC_AFFINITY, SVC_SOURCE_RANGE, SVC_REJECT = 1, 2, 4, 8
SVC_FLAG_NAMES = ((SVC_EXTERNAL, "external"), (SVC_AFFINITY, "affinity"),
                  (SVC_SOURCE_RANGE, "source-ranges"), (SVC_REJECT, "reject-if-empty"))
CT_SERVICE, CT_REPLY = 0, 1
PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}

# reserved identities, as Cilium numbers them; label sets get theirs from FIRST_IDENTITY on
ID_HOST, ID_WORLD, ID_REMOTE_NODE = 1, 2, 6
FIRST_IDENTITY = 256


def ip_bytes(ip: str) -> bytes:
    """An address of either family as the maps hold it: 4 or 16 bytes, network order."""
    return ipaddress.ip_address(str(ip)).packed


def ip_str(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def union_bytes(ip: str) -> bytes:
    """An address in Cilium's 16-byte union (IPv4 in the first 4 bytes) and its family byte."""
    address = ipaddress.ip_address(str(ip))
    return address.packed.ljust(16, b"\0"), KEY_FAMILY[address.version]


def union_str(raw: bytes, family: int) -> str:
    return ip_str(raw[:4] if family == KEY_FAMILY[4] else raw[:16])


def port_bytes(port: int) -> bytes:
    return struct.pack("!H", port)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# --- keys and values ----------------------------------------------------------------------
def node_config(node_ip: str, router_ip: str, netdev: int, host: int, tunnel: int,
                node_ip6: str = "", router_ip6: str = "") -> bytes:
    """The node's addresses (IPv6 ones zero without IPv6), devices and flags."""
    flags = CFG_TUNNEL if tunnel else 0
    v6 = b"".join(ip_bytes(a) if a else bytes(16) for a in (node_ip6, router_ip6))
    return ip_bytes(node_ip) + ip_bytes(router_ip) + struct.pack(
        "<IIII", netdev, host, tunnel, flags) + v6


def endpoint_key(ip: str) -> bytes:
    """Cilium's endpoint_key: the address's union, its family, key 0, cluster ID 0."""
    raw, family = union_bytes(ip)
    return raw + struct.pack("<BBH", family, 0, 0)


def endpoint_value(ifindex: int, identity: int, pod_mac: str, lxc_mac: str) -> bytes:
    return struct.pack("<II", ifindex, identity) + mac_bytes(pod_mac) + mac_bytes(lxc_mac)


def ipcache_key(prefix: str) -> bytes:
    """Cilium's LPM key: 32 bits of cluster ID, pad and family always matched, then the
    prefix of the address's union."""
    net = ipaddress.ip_network(prefix)
    raw, family = union_bytes(str(net.network_address))
    return struct.pack("<IHBB", 32 + net.prefixlen, 0, 0, family) + raw


def ipcache_value(identity: int, tunnel_endpoint: str | None) -> bytes:
    return struct.pack("<I", identity) + (ip_bytes(tunnel_endpoint) if tunnel_endpoint
                                          else bytes(4))


def service_key(address: str, port: int, protocol: str, slot: int = 0) -> bytes:
    return ip_bytes(address) + port_bytes(port) + struct.pack("<HB3x", slot, PROTOCOLS[protocol])


def service_value(backend_id: int = 0, count: int = 0, rev_nat: int = 0, flags: int = 0) -> bytes:
    return struct.pack("<IHHB3x", backend_id, count, rev_nat, flags)


def source_range_key(rev_nat: int, cidr: str) -> bytes:
    """LPM key: the frontend's reverse-NAT index (always matched whole) and the range."""
    net = ipaddress.ip_network(cidr, strict=False)
    return struct.pack("<IHH", 32 + net.prefixlen, rev_nat, 0) + net.network_address.packed


def backend_key(backend_id: int) -> bytes:
    return struct.pack("<I", backend_id)


def backend_value(ip: str, port: int, protocol: str) -> bytes:
    return ip_bytes(ip) + port_bytes(port) + struct.pack("<Bx", PROTOCOLS[protocol])


def rev_nat_key(index: int) -> bytes:
    return struct.pack("<H", index)


def rev_nat_value(address: str, port: int) -> bytes:
    return ip_bytes(address) + port_bytes(port) + bytes(2)


def ct_key(saddr: str, daddr: str, sport: int, dport: int, protocol: str,
           direction: int) -> bytes:
    return ip_bytes(saddr) + ip_bytes(daddr) + port_bytes(sport) + port_bytes(dport) + \
        struct.pack("<BBxx", PROTOCOLS[protocol], direction)


def ct_family(key: bytes) -> int:
    """4 or 6: the family of a CT key (16 or 40 bytes)."""
    return 6 if len(key) > 16 else 4


def ct_direction(key: bytes) -> int:
    return key[-3]


def ct_backend(value: bytes) -> int:
    """The backend ID of a CT_SERVICE entry."""
    return struct.unpack_from("<I", value)[0]


# --- writing: bpftool batch ---------------------------------------------------------------
def _hex(raw: bytes) -> str:
    return " ".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class MapWrite:
    """One update (value) or delete (value None) of one map entry."""
    map: str
    key: bytes
    value: bytes | None = None

    def line(self, maps_dir: str) -> str:
        path = f"{maps_dir}/{self.map}"
        if self.value is None:
            return f"map delete pinned {path} key hex {_hex(self.key)}"
        return f"map update pinned {path} key hex {_hex(self.key)} value hex {_hex(self.value)}"


def write(maps_dir: str, writes: list[MapWrite]) -> None:
    """Apply map writes in order, in one bpftool process. Deletes of entries already gone are
    not errors (they are run apart, after the updates)."""
    write_many({maps_dir: writes})


def write_many(writes_by_dir: dict[str, list[MapWrite]]) -> None:
    """write() to the maps of several nodes, still in one bpftool process."""
    updates = [w.line(d) for d, writes in writes_by_dir.items() for w in writes
               if w.value is not None]
    deletes = [w.line(d) for d, writes in writes_by_dir.items() for w in writes
               if w.value is None]
    if updates:
        netns.run(["bpftool", "batch", "file", "-"], input="\n".join(updates) + "\n")
    for line in deletes:  # one by one: batch stops at the first missing key
        netns.run(["bpftool", *line.split()], check=False)


# --- reading: bpftool map dump --------------------------------------------------------------
def _raw(values: list) -> bytes:
    return bytes(int(v, 16) for v in values)


def dump(maps_dir: str, name: str) -> list[tuple[bytes, object]]:
    """[(key, value)] of a pinned map; a per-CPU map's value is a list, one per CPU."""
    out = netns.run(["bpftool", "-j", "map", "dump", "pinned", f"{maps_dir}/{name}"])
    entries = json.loads(out or "[]")
    pairs = []
    for e in entries:
        key = _raw(e["key"])
        if "values" in e:
            pairs.append((key, [_raw(v["value"]) for v in e["values"]]))
        else:
            pairs.append((key, _raw(e["value"])))
    return pairs


def lookup(maps_dir: str, name: str, key: bytes) -> bytes | None:
    """One entry's value, or None where the map has no such key."""
    out = netns.run(["bpftool", "-j", "map", "lookup", "pinned", f"{maps_dir}/{name}", "key",
                     "hex", *_hex(key).split()], check=False)
    try:
        return _raw(json.loads(out)["value"])
    except (ValueError, KeyError, TypeError):
        return None


def decode_endpoint(key: bytes, value: bytes) -> dict:
    ifindex, identity = struct.unpack_from("<II", value)
    return {"ip": union_str(key, key[16]), "ifindex": ifindex, "identity": identity,
            "pod_mac": mac_str(value[8:14]), "lxc_mac": mac_str(value[14:20])}


def decode_ipcache(key: bytes, value: bytes) -> dict:
    prefixlen, family = struct.unpack_from("<I3xB", key)
    (identity,) = struct.unpack_from("<I", value)
    tunnel = value[4:8]
    return {"prefix": f"{union_str(key[8:24], family)}/{prefixlen - 32}", "identity": identity,
            "tunnel_endpoint": ip_str(tunnel) if any(tunnel) else ""}


def decode_service(key: bytes, value: bytes) -> dict:
    size = len(key) - 8  # the address: 4 or 16 bytes, then port, slot, protocol, pad
    slot, proto = struct.unpack_from("<HB", key, size + 2)
    backend_id, count, rev_nat, flags = struct.unpack_from("<IHHB", value)
    return {"address": ip_str(key[:size]),
            "port": struct.unpack("!H", key[size:size + 2])[0],
            "protocol": PROTOCOL_NAMES.get(proto, str(proto)), "slot": slot,
            "backend_id": backend_id, "count": count, "rev_nat": rev_nat, "flags": flags}


def decode_backend(key: bytes, value: bytes) -> dict:
    (backend_id,) = struct.unpack("<I", key)
    size = len(value) - 4  # the address, then port, protocol, pad
    return {"id": backend_id, "ip": ip_str(value[:size]),
            "port": struct.unpack("!H", value[size:size + 2])[0],
            "protocol": PROTOCOL_NAMES.get(value[size + 2], str(value[size + 2]))}


def decode_metrics(key: bytes, per_cpu: list[bytes]) -> dict:
    (index,) = struct.unpack("<I", key)
    program, reason = divmod(index, METRIC_REASONS)
    packets = sum(struct.unpack_from("<Q", v)[0] for v in per_cpu)
    octets = sum(struct.unpack_from("<Q", v, 8)[0] for v in per_cpu)
    return {"program": PROGRAMS[program] if program < len(PROGRAMS) else str(program),
            "reason": REASONS[reason] if reason < len(REASONS) else str(reason),
            "packets": packets, "bytes": octets}
