"""What the kernel says about a probe's path beside the captures: interface names, the route a
namespace chose, the VXLAN forwarding entry used, the kube-proxy chain that DNATed, and the
NetworkPolicy drop counters that rose."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from testbed.errors import CommandError
from testbed.host import netns
from testbed.manifests.families import join_host_port as hostport
from testbed.trace.pcap import Sighting

if TYPE_CHECKING:  # the tracer imports this module
    from testbed.trace.tracer import Hop, Place

POLICY_TABLES = (("ip", "calico"), ("ip6", "calico"))  # a table per family, as Felix's
ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit", "local", "broadcast",
               "throw", "multicast", "anycast", "nat")


def _run(place, argv) -> str:
    return netns.run(place.wrap(argv), timeout=10)


def name_interfaces(sightings: list[Sighting], by_label: dict[str, Place]) -> None:
    """Each sighting's interface name, from its namespace's own index -> name table."""
    names = {}
    for label in {s.where for s in sightings}:
        table = {}
        for line in _run(by_label[label], ["ip", "-o", "link", "show"]).splitlines():
            index, name = line.split(":", 2)[:2]
            table[int(index)] = name.strip().split("@")[0]
        names[label] = table
    for s in sightings:
        s.interface = names[s.where].get(s.ifindex, f"if{s.ifindex}")


def route(place: Place, dst: str) -> str:
    """The most specific route a namespace holds for `dst` (its protocol shows who wrote it:
    `proto bird` for BIRD's)."""
    best, length = "", -1
    family = "-6" if ":" in dst else "-4"  # `show match` reads the IPv4 table unless told
    for line in _run(place, ["ip", family, "route", "show", "match", dst]).splitlines():
        words = line.split()
        prefix = words[1] if words[0] in ROUTE_TYPES and len(words) > 1 else words[0]
        whole = 128 if ":" in dst else 32  # a prefix without a length is one address
        bits = 0 if prefix == "default" else int(prefix.split("/")[1]) if "/" in prefix \
            else whole
        if bits > length:
            best, length = line.strip(), bits
    return best or f"no route to {dst}"


NEIGHBOUR_STATES = {"INCOMPLETE": "{how} asked, nobody has answered",
                    "FAILED": "{how} asked, nobody answered"}


def route_text(place: Place, dst: str) -> str:
    """What `ip route get` decides for `dst` there (an error names why it cannot go on), and
    the state of the neighbour it needs when that neighbour never answered."""
    try:
        decided = _run(place, ["ip", "route", "get", dst]).splitlines()[0].strip()
    except CommandError as err:
        return f"ip route get {dst}: {err.output.strip()}"
    text = f"ip route get: {decided}"
    words = decided.split()
    if "dev" in words:
        next_hop = words[words.index("via") + 1] if "via" in words else dst
        device = words[words.index("dev") + 1]
        entry = _run(place, ["ip", "neigh", "show", next_hop, "dev", device]).strip()
        state = entry.split()[-1] if entry else ""
        if state in NEIGHBOUR_STATES:  # ARP for IPv4, neighbour discovery for IPv6
            how = "neighbour discovery" if ":" in next_hop else "ARP"
            text += f"; neighbour {next_hop} on {device}: {state} " \
                    f"({NEIGHBOUR_STATES[state].format(how=how)})"
    return text


def fdb_entry(place: Place, mac: str) -> str | None:
    """The VXLAN forwarding entry (MAC -> remote node) a namespace holds for `mac`."""
    for line in _run(place, ["bridge", "fdb", "show"]).splitlines():
        if line.startswith(mac) and " dst " in line:
            return line.strip()
    return None


def dnat_chain(place: Place, endpoint: str) -> str:
    """The kube-proxy chain that DNATs to `endpoint` (ip:port, [ip]:port for IPv6) in a
    node, and the Service chain that chose it: iptables' KUBE-SEP/KUBE-SVC (KUBE-SVL for a
    policy Local), or nftables' endpoint-... chain (ip6tables and `table ip6 kube-proxy` for
    IPv6)."""
    v6 = endpoint.startswith("[")
    try:
        saved = _run(place, ["ip6tables-save" if v6 else "iptables-save", "-t", "nat"])
    except CommandError:
        saved = ""
    sep = next((line.split()[1] for line in saved.splitlines()
                if line.startswith("-A KUBE-SEP-") and f"--to-destination {endpoint}" in line),
               None)
    if sep:
        svc = next((line.split()[1] for line in saved.splitlines()
                    if line.startswith(("-A KUBE-SVC-", "-A KUBE-SVL-")) and
                    line.endswith(f"-j {sep}")), None)
        return f"iptables {svc + ' -> ' if svc else ''}{sep}"
    try:
        listing = _run(place, ["nft", "list", "table", "ip6" if v6 else "ip", "kube-proxy"])
    except CommandError:
        return "no kube-proxy rule found for it"
    chain = None
    for line in listing.splitlines():
        words = line.split()
        if words[:1] == ["chain"]:
            chain = words[1]
        elif f"dnat to {endpoint}" in line and chain:
            return f"nftables chain {chain}"
    return "no kube-proxy rule found for it"


def neighbour(place: Place, route_line: str) -> str | None:
    """The neighbour entry a route's gateway resolves to (`via GW dev DEV`), or None."""
    words = route_line.split()
    if "via" not in words or "dev" not in words:
        return None
    gateway, device = words[words.index("via") + 1], words[words.index("dev") + 1]
    found = _run(place, ["ip", "neigh", "show", gateway, "dev", device]).strip()
    return found.splitlines()[0] if found else f"{gateway} dev {device}: no neighbour entry yet"


def annotate(hops: list[Hop], by_label: dict[str, Place], original_dst: str, original_port: int,
             nat_by: str = "") -> None:
    """Notes on the hops where a namespace decided something: its route and neighbour, the
    tunnel it wrapped the packet in, its DNAT (by kube-proxy's rules, or by `nat_by` where
    something else translates Services)."""
    for before, hop in zip([None] + hops[:-1], hops):
        place = by_label[hop.where]
        same_place = before is not None and before.where == hop.where
        if hop.outer is not None and hop.direction == "out":
            o = hop.outer.flow
            wrapped_here = not (same_place and before.outer is not None)
            if hop.tunnel.get("kind") == "vxlan":
                hop.notes.append(f"VXLAN VNI {hop.tunnel['vni']}: {hostport(o.src, o.sport)} > "
                                 f"{hostport(o.dst, o.dport)} ttl {hop.outer.ttl}")
                entry = fdb_entry(place, hop.tunnel["inner_dst_mac"]) if wrapped_here else None
                if entry:  # a kernel VXLAN device's (OVS's tunnel port keeps no fdb)
                    hop.notes.append("fdb: " + entry)
            else:
                hop.notes.append(f"flannel udp datagram: {hostport(o.src, o.sport)} > "
                                 f"{hostport(o.dst, o.dport)} ttl {hop.outer.ttl}")
        elif hop.direction == "out" and place.kind != "rack" and \
                not (same_place and before.direction == "out"):
            chosen = route(place, hop.packet.flow.dst)
            hop.notes.append("route: " + chosen)
            neigh = neighbour(place, chosen)
            if neigh:
                hop.notes.append("neighbour: " + neigh)
        dst = hop.packet.flow.dst
        if dst != original_dst and (before is None or before.packet.flow.dst == original_dst):
            endpoint = hostport(dst, hop.packet.flow.dport)
            by = nat_by or f"kube-proxy: {dnat_chain(place, endpoint)}"
            asked = hostport(original_dst, before.packet.flow.dport if before else original_port)
            hop.notes.insert(0, f"DNAT {asked} -> {endpoint} by {by}")
        if before is not None and hop.packet.flow.src != before.packet.flow.src:
            was, now = before.packet.flow, hop.packet.flow
            hop.notes.append(f"SNAT {hostport(was.src, was.sport)} -> "
                             f"{hostport(now.src, now.sport)} "
                             f"({'by ' + nat_by if nat_by else 'masquerade'})")


def annotate_reply(hops: list[Hop], undone_by: str = "conntrack") -> None:
    """Where conntrack (or `undone_by`) undid a NAT on the way back."""
    for before, hop in zip(hops, hops[1:]):
        was, now = before.packet.flow, hop.packet.flow
        if (was.src, was.sport) != (now.src, now.sport) or (was.dst, was.dport) != \
                (now.dst, now.dport):
            hop.notes.append(f"reverse NAT by {undone_by}: {hostport(was.src, was.sport)} > "
                             f"{hostport(was.dst, was.dport)} became "
                             f"{hostport(now.src, now.sport)} > {hostport(now.dst, now.dport)}")


def conntrack_entries(place: Place, protocol: str) -> list[dict]:
    """The namespace's conntrack entries of one protocol (tcp or udp), parsed."""
    try:
        table = _run(place, ["cat", "/proc/net/nf_conntrack"])
    except CommandError:
        return []
    return [e for e in map(parse_conntrack, table.splitlines())
            if e and e["protocol"] == protocol.lower()]


def tuple_of(half: dict) -> tuple[str, int, str, int]:
    """(src, sport, dst, dport) of one direction of a conntrack entry."""
    return half["src"], int(half["sport"]), half["dst"], int(half["dport"])


def probe_tuples(entries: dict[str, list[dict]], sport: int, dst: str, dport: int) -> \
        tuple[set, dict]:
    """Every (src, sport, dst, dport) the probe was seen under, NAT by NAT: its own, then
    what each namespace's conntrack turned it into (a reply tuple read backwards: the
    packet as it left, to a DNATed endpoint, from a SNATed address and port, as flannel's
    masquerade with --random-fully picks a new one), followed from namespace to namespace;
    and {namespace: its entry of the probe}."""
    known, found = set(), {}
    for label, listed in entries.items():
        for e in listed:
            src, esport, edst, edport = tuple_of(e["original"])
            if esport == sport and (edst, edport) == (dst, dport):
                known.add((src, esport, edst, edport))
    grown = True
    while grown:
        grown = False
        for label, listed in entries.items():
            for e in listed:
                if tuple_of(e["original"]) not in known:
                    continue
                found.setdefault(label, e)
                r = tuple_of(e["reply"])
                after = (r[2], r[3], r[0], r[1])
                if after not in known:
                    known.add(after)
                    grown = True
    return known, found


def parse_conntrack(line: str) -> dict | None:
    """One line of /proc/net/nf_conntrack (either family; IPv6 addresses as conntrack writes
    them, compressed here as everywhere else): protocol, TCP state, both tuples, unreplied."""
    words = line.split()
    if len(words) < 6 or words[0] not in ("ipv4", "ipv6"):
        return None
    words = [_compressed(w) if words[0] == "ipv6" else w for w in words]
    pairs = [w.split("=", 1) for w in words if w.split("=")[0] in ("src", "dst", "sport",
                                                                    "dport")]
    if len(pairs) < 8:
        return None
    state = words[5] if words[2] == "tcp" else ""
    return {"protocol": words[2], "state": state, "original": dict(pairs[:4]),
            "reply": dict(pairs[4:8]), "unreplied": "[UNREPLIED]" in words}


def _compressed(word: str) -> str:
    """src=/dst= of an IPv6 conntrack line in the usual short form."""
    key, sep, value = word.partition("=")
    if sep and key in ("src", "dst") and ":" in value:
        return f"{key}={ipaddress.IPv6Address(value)}"
    return word


def policy_drops(places: Iterable[Place]) -> dict:
    """{(label, chain): (dropped packets, policies the chain runs, its comment)} of every
    NetworkPolicy endpoint chain's drop rule in the given namespaces."""
    out = {}
    for place, table in ((p, t) for p in places for t in POLICY_TABLES):
        try:
            listing = _run(place, ["nft", "list", "table", *table])
        except (CommandError, OSError):
            continue  # no policy table there
        chain, policies = None, []
        for line in (raw.strip() for raw in listing.splitlines()):
            if line.startswith("chain "):
                chain, policies = line.split()[1], []
            elif line.startswith("jump cali-p") and chain:
                iface = chain.split("-", 2)[2]
                policies.append(line.split()[1].split(f"-{iface}-", 1)[-1])
            elif " drop" in line and "counter packets" in line and chain:
                count = int(line.split("counter packets ")[1].split()[0])
                comment = line.split('comment "', 1)[1].rstrip('"') if 'comment "' in line \
                    else ""
                earlier = out.get((place.label, chain), (0,))[0]  # the other family's
                out[(place.label, chain)] = (earlier + count, policies, comment)
    return out


def rises(before: dict, after: dict) -> list[tuple[str, str, list[str], str]]:
    """(label, chain, policies, comment) of the drop rules whose counters rose."""
    return [(label, chain, policies, comment)
            for (label, chain), (count, policies, comment) in sorted(after.items())
            if count > before.get((label, chain), (0,))[0]]
