"""Which connections NetworkPolicy denied: each node's endpoint chains remember every packet
they drop in a set (drops-ingress, drops-egress of table ip calico), one element per
source, destination, protocol and port, with a counter and a timeout the last drop refreshed.
Read from `nft -j list set`, attributed to the pod the chain guards and the policies that
isolate it (none of which admitted the packet)."""
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.errors import CommandError
from testbed.model.state import RunState
from testbed.policy import nftables
from testbed.policy import semantics as pol


@dataclass
class Drop:
    node: str
    direction: str        # "Ingress" (to the pod) or "Egress" (from it)
    pod: str              # the isolated pod's key, namespace/name
    peer: str             # the other side: a pod's key, a node's name, or its address
    src: str
    dst: str
    protocol: str
    port: int | None      # TCP, UDP, SCTP: the destination port
    packets: int
    last: float           # when the last packet was dropped (epoch seconds)
    policies: list[str] = field(default_factory=list)


def parse(listing: str, now: float) -> list[dict]:
    """The elements of one `nft -j list set` listing: src, dst, protocol, port, packets and
    when the last one was dropped."""
    out = []
    for item in json.loads(listing).get("nftables", []):
        for elem in item.get("set", {}).get("elem", []):
            body = elem.get("elem", elem)
            src, dst, protocol, port = body["val"]["concat"]
            expires = body.get("expires", nftables.DROPS_TIMEOUT_S)
            out.append({"src": src, "dst": dst, "protocol": str(protocol).upper(),
                        "port": port if str(protocol).upper() in ("TCP", "UDP", "SCTP")
                        else None,
                        "packets": body.get("counter", {}).get("packets", 0),
                        "last": now - (nftables.DROPS_TIMEOUT_S - expires)})
    return out


def attribute(state: RunState, node: str, direction: str, elements: list[dict]) -> list[Drop]:
    """Each element as a Drop: the pod its chain guards (the destination of an ingress drop,
    the source of an egress one), its peer by name, and the policies isolating the pod."""
    by_ip = {ip: key for key, pod in state.pods.items() for ip in pod.addresses}
    hosts = {rec.ip: name for table in (state.nodes, state.routers, state.hosts)
             for name, rec in table.items()}
    hosts.update({rec.ip_v6: name for name, rec in state.nodes.items() if rec.ip_v6})
    all_policies = pol.policies(state)
    out = []
    for e in elements:
        pod_ip, peer_ip = (e["dst"], e["src"]) if direction == "Ingress" else \
            (e["src"], e["dst"])
        pod_key = by_ip.get(pod_ip, pod_ip)
        pod = state.pods.get(pod_key)
        names = [f"{p.namespace}/{p.name}" for p in
                 pol.isolating(all_policies, pod, direction)] if pod else []
        out.append(Drop(node, direction, pod_key, by_ip.get(peer_ip) or hosts.get(peer_ip)
                        or peer_ip, e["src"], e["dst"], e["protocol"], e["port"],
                        e["packets"], e["last"], names))
    return sorted(out, key=lambda d: -d.last)


def read(state: RunState, run: Callable[[str, list[str]], str]) -> list[Drop]:
    """Every node's remembered drops, newest first; `run(node, argv)` runs a command in a
    node. A node without the table (nothing isolated there yet) has none."""
    out = []
    for node in state.nodes:
        for table in nftables.TABLES.values():  # ip calico, and ip6 calico with IPv6
            for direction, name in nftables.DROP_SETS.items():
                try:
                    listing = run(node, ["nft", "-j", "list", "set", *table.split(), name])
                except CommandError:
                    continue
                out += attribute(state, node, direction, parse(listing, time.time()))
    return sorted(out, key=lambda d: -d.last)
