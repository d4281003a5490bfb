"""NetworkPolicy enforcement in each node's packet filter, in the shape Calico's Felix gives it.

Per node, one nftables table `calico` holds, for every local pod isolated in a direction, a
chain on the host side of its interface: cali-tw-<iface> for traffic to the pod (ingress),
cali-fw-<iface> for traffic from it (egress). They run the pod's policies, one chain each
(cali-pi-<iface>-<ns>/<policy> inbound, cali-po-... outbound); a rule that admits the packet
sets the accept bit of the mark and returns, and the endpoint chain drops what no policy
passed. Established and related packets are accepted first: replies of allowed connections
flow. Traffic from the node's own addresses to its pods is always allowed.

The table (ip calico) hooks forward (to and from pods) and input (pods to their node). How a
packet is tied to its pod depends on how pods attach:
  routed (bgp: cali interfaces, routed by the node): by interface, iifname/oifname;
  bridged (flannel modes: veths on cni0, where Canal puts Felix): by the pod's address, since
      bridged packets reach the IP hooks through br_netfilter (bridge-nf-call-iptables, as
      kubeadm requires) with the bridge as their device. This kernel has no connection
      tracking in nftables' bridge family, so the bridge's own hooks cannot keep replies open.

In a dual-stack cluster the same chains are written a second time for IPv6, in table
`ip6 calico`, as Felix renders a table per family: each from the pods' addresses, ipBlocks and
node addresses of its family (an IPv4 ipBlock admits no IPv6 packet, nor the reverse).

chains() is pure: the run's state in, the node's chains out. A node's first sync replaces the
whole table (render()); after that, as Felix updates only what a change touches, one nft
transaction adds the new chains, edits the changed ones rule by rule and deletes those gone
(edits.py).
"""
import shutil
import sys
from dataclasses import dataclass

from testbed.errors import CommandError, TestbedError
from testbed.manifests.families import IPV4, IPV6, family_of
from testbed.model.context import ClusterContext, NodeContext
from testbed.model.records import PodRecord
from testbed.model.state import RunState
from testbed.policy import edits
from testbed.policy import semantics as pol

TABLES = {IPV4: "ip calico", IPV6: "ip6 calico"}
TABLE = TABLES[IPV4]
MATCH = {IPV4: "ip", IPV6: "ip6"}  # the address match of each family's table
PROTOCOLS = ("TCP", "UDP", "SCTP")  # matched by IP protocol number: no SCTP module needed
ACCEPT_MARK = "0x10000"


def keys(hook: str, family: str = IPV4) -> tuple[str, str]:
    """(from, to): how a packet is tied to its pod, by interface or by address."""
    if hook == "routed":
        return "iifname", "oifname"
    return f"{MATCH[family]} saddr", f"{MATCH[family]} daddr"


def host_interface(pod: PodRecord) -> str | None:
    """The host-side interface of a pod record, from its CNI result."""
    names = [i["name"] for i in pod.result.get("interfaces", [])
             if "sandbox" not in i and i["name"] != pod.netconf.get("bridge")]
    return names[0] if names else None


def _addresses(ips):
    return "{ " + ", ".join(sorted(ips)) + " }"


def _ports(ports, protocol, target):
    """nft port matches for the PolicyPorts of one protocol: "" when the rule has no ports
    (every port), None when none of them exists on the target."""
    if not ports:
        return ""
    ranges = []
    for p in ports:
        if p.protocol != protocol:
            continue
        found = pol.port_numbers(p, target)
        if found:
            ranges.append(str(found[0]) if found[0] == found[1] else f"{found[0]}-{found[1]}")
    return f"th dport {{ {', '.join(ranges)} }}" if ranges else None


def _peer_matches(state, policy, rule, side, family=IPV4):
    """nft address matches ("ip saddr ...") for the rule's peers of one family; [""] for
    every peer."""
    if not rule.peers:
        return [""]
    out = []
    ip = MATCH[family]
    for peer in rule.peers:
        if peer.cidr:
            if family_of(peer.cidr.split("/")[0]) != family:
                continue  # a block of the other family admits nothing here
            match = f"{ip} {side} {peer.cidr}"
            if peer.excepts:
                match += f" {ip} {side} != {_addresses(peer.excepts)}"
            out.append(match)
        else:
            ips = set(pol.peer_pods(state, policy, peer, family).values())
            if ips:
                out.append(f"{ip} {side} {_addresses(ips)}")
    return out


def _policy_rules(state, policy, direction, pod, family=IPV4):
    """Rules of one policy for one local pod: each admitting match sets the accept bit."""
    rules = policy.ingress if direction == "Ingress" else policy.egress
    side = "saddr" if direction == "Ingress" else "daddr"
    out = []
    for rule in rules:
        for peer in _peer_matches(state, policy, rule, side, family):
            for protocol in PROTOCOLS if rule.ports else ("",):
                if direction == "Ingress":
                    targets = [pod]
                else:  # named ports are the destination pods' own
                    named = any(isinstance(p.port, str) for p in rule.ports)
                    targets = [None] + (list(state.pods.values()) if named else [])
                for target in targets:
                    ports = _ports(rule.ports, protocol, target)
                    if ports is None:
                        continue
                    target_ip = target.address(family) if target is not None else None
                    if target is not None and direction == "Egress":
                        if target_ip is None:
                            continue
                        peer_part = f"{peer} {MATCH[family]} daddr {target_ip}".strip()
                    else:
                        peer_part = peer
                    proto = f"meta l4proto {protocol.lower()}" if protocol else ""
                    match = " ".join(x for x in (peer_part, proto, ports) if x)
                    out.append(f"{match} meta mark set meta mark | {ACCEPT_MARK} return"
                               .strip())
    return out


BASE_CHAINS = {"forward": "type filter hook forward priority filter; policy accept;",
               "input": "type filter hook input priority filter; policy accept;"}
# Calico's NFLOG groups for denied packets: 1 inbound (to a pod), 2 outbound (from one)
NFLOG_GROUPS = {"Ingress": 1, "Egress": 2}
DROPS_KEY = "ip saddr . ip daddr . meta l4proto . th dport"


def drops_key(family: str = IPV4) -> str:
    return DROPS_KEY.replace("ip ", f"{MATCH[family]} ")
DROPS_TIMEOUT_S = 3600  # an element's timeout, refreshed by each drop: it dates the last one
DROP_SETS = {"Ingress": "drops-ingress", "Egress": "drops-egress"}


def drop_rule(chain: str, direction: str, pod_key: str, family: str = IPV4) -> str:
    """An endpoint chain's last rule: what no policy passed is remembered per connection (a
    set element with a counter, its timeout refreshed), sent to nflog with the chain's name
    as prefix (`tcpdump -i nflog:1` in the node shows it; the host's kernel log never does),
    counted and dropped."""
    return (f"update @{DROP_SETS[direction]} {{ {drops_key(family)} timeout {DROPS_TIMEOUT_S}s }} "
            f'log prefix "{chain}" group {NFLOG_GROUPS[direction]} counter drop '
            f'comment "{pod_key}: no policy allows this {direction.lower()}"')


def _drop_sets(family: str = IPV4) -> list[str]:
    return [f"  set {name} {{ typeof {drops_key(family)}; size 65535; flags dynamic,timeout; "
            f"timeout {DROPS_TIMEOUT_S}s; counter; }}" for name in DROP_SETS.values()]


def chains(state: RunState, node_name: str, hook: str, node_addresses: list[str],
           family: str = IPV4) -> dict[str, list[str]]:
    """{chain: rules} of the node's `calico` table of one family (`ip calico`, `ip6
    calico`) for the policies of the run's state, the base chains (forward, input) first."""
    from_key, to_key = keys(hook, family)
    all_policies = pol.policies(state)  # parsed once, not per pod and direction
    out, to_pods, from_pods = {}, {}, {}
    for key, pod in sorted(state.pods.items()):
        iface = host_interface(pod)
        pod_ip = pod.address(family)
        if pod.node != node_name or not pod_ip or iface is None:
            continue
        for direction, prefix, verdicts in (("Ingress", "tw", to_pods),
                                            ("Egress", "fw", from_pods)):
            isolating = pol.isolating(all_policies, pod, direction)
            if not isolating:
                continue
            chain = f"cali-{prefix}-{iface}"
            body = []
            own = [a for a in node_addresses if family_of(a) == family]
            if direction == "Ingress" and own:
                body.append(f"{MATCH[family]} saddr {_addresses(own)} return")  # own node
            body.append(f"meta mark set meta mark & {~int(ACCEPT_MARK, 16) & 0xffffffff:#x}")
            for policy in isolating:
                sub = f"cali-p{'i' if direction == 'Ingress' else 'o'}-{iface}-" \
                      f"{policy.namespace}/{policy.name}"
                out[sub] = _policy_rules(state, policy, direction, pod, family)
                # as Felix: the first policy that passes the packet ends the search
                body += [f"jump {sub}", f"meta mark & {ACCEPT_MARK} == {ACCEPT_MARK} return"]
            body.append(drop_rule(chain, direction, key, family))
            out[chain] = body
            verdicts[f'"{iface}"' if hook == "routed" else pod_ip] = chain
    base = {"forward": ["ct state established,related accept", "ct state invalid drop"],
            "input": ["ct state established,related accept"]}
    if from_pods:
        base["forward"].append(f"{from_key} vmap {_vmap(from_pods)}")
        base["input"].append(f"{from_key} vmap {_vmap(from_pods)}")
    if to_pods:
        base["forward"].append(f"{to_key} vmap {_vmap(to_pods)}")
    return {**base, **out}


def _vmap(verdicts):
    return "{ " + ", ".join(f"{key} : jump {chain}"
                            for key, chain in sorted(verdicts.items())) + " }"


def render(state: RunState, node_name: str, hook: str, node_addresses: list[str],
           family: str = IPV4) -> str:
    """The node's whole `calico` table of a family, replacing whatever it held."""
    return full_table(chains(state, node_name, hook, node_addresses, family), family)


def full_table(table: dict[str, list[str]], family: str = IPV4) -> str:
    name = TABLES[family]
    lines = [f"table {name} {{}}", f"delete table {name}", f"table {name} {{",
             *_drop_sets(family)]
    for chain, rules in table.items():
        lines.append(f"  chain {chain} {{")
        if chain in BASE_CHAINS:
            lines.append(f"    {BASE_CHAINS[chain]}")
        lines += [f"    {r}" for r in rules]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


@dataclass
class HeldTable:
    """What a node's table holds: its chains' rules and the kernel's handles of them."""
    chains: dict[str, list[str]]
    handles: dict[str, list[int]]


class Enforcer:
    """Felix's role on every node: after a change, what it touched of the node's table."""

    def __init__(self, hook: str):
        self.hook = hook  # "routed" or "bridged"
        self.addresses: dict[str, list[str]] = {}  # node -> its own addresses (allowed in)
        self.held: dict[tuple[str, str], HeldTable] = {}  # (node, family) -> its table
        self.active = False

    def sync(self, cluster: ClusterContext) -> None:
        state = cluster.state
        if not state.policies and not self.active:
            return
        if not shutil.which("nft"):
            raise TestbedError("NetworkPolicy enforcement needs nft (nftables), which this "
                               "machine lacks (see `testbed doctor`)")
        self.active = True
        for node in cluster.nodes.values():
            families = cluster.spec.families
            if node.name not in self.addresses:
                self.addresses[node.name] = [
                    a["local"] for link in node.ns.ip_json("addr", "show")
                    for a in link.get("addr_info", [])
                    if a["local"] not in ("127.0.0.1", "::1") and a.get("scope") != "link"]
                state.nodes[node.name].addresses = self.addresses[node.name]
                state.save()  # `policy check` reads them: the node's own addresses
                if self.hook == "bridged":  # bridged packets through the IP hooks
                    node.ns.run("sysctl", "-qw", *(
                        f"net.bridge.bridge-nf-call-ip{'6' if f == IPV6 else ''}tables=1"
                        for f in families))
            for family in families:
                self.sync_node(node, chains(state, node.name, self.hook,
                                            self.addresses[node.name], family), family)

    def sync_node(self, node: NodeContext, table: dict[str, list[str]],
                  family: str = IPV4) -> None:
        """Bring one node's table of a family to `table`: whole the first time (or when an
        edit fails, as Felix resyncs), by rule-level edits after that."""
        name = TABLES[family]
        held = self.held.pop((node.name, family), None)
        if held is not None:
            change = edits.edit(name, held.chains, held.handles, table)
            if not change.text:
                self.held[(node.name, family)] = HeldTable(table, held.handles)
                return
            try:
                echo = node.ns.run("nft", "--echo", "--handle", "-f", "-", input=change.text)
                handles = {c: held.handles[c] for c in table if c in held.handles}
                handles.update(change.handles_after(echo))
                self.held[(node.name, family)] = HeldTable(table, handles)
                return
            except (CommandError, StopIteration) as err:  # refused, or an unreadable echo
                print(f"policy: {node.name}: an edit of table {name} was not applied "
                      f"({str(err).strip()[-300:] or 'its echo unread'}); the table is "
                      "written whole", file=sys.stderr)
        node.ns.run("nft", "-f", "-", input=full_table(table, family))
        listing = node.ns.run("nft", "--handle", "list", "table", *name.split())
        self.held[(node.name, family)] = HeldTable(table, edits.listed_handles(listing))
