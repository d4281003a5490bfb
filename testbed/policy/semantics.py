"""NetworkPolicy semantics, as Kubernetes documents them: which pods a policy isolates, which
peers and ports its rules admit, and the decision for one connection with its reasons.

- A pod is isolated for ingress (egress) when some policy of its namespace selects it and has
  that policy type; an isolated pod accepts (sends) only what some rule of those policies
  allows. Policies are additive: any rule allowing is enough, none can deny.
- Peers: a podSelector alone means pods of the policy's namespace; a namespaceSelector alone,
  every pod of the selected namespaces; both in one peer, the selected pods of the selected
  namespaces; an ipBlock, addresses in its cidr and in none of its excepts.
- Ports: a rule without ports admits every port; a named port is looked up on the destination
  pod's containers; endPort makes a range.
- Traffic from the pod's own node is always allowed, and replies of allowed connections too.

Everything here is pure: the run's state in, decisions out.
"""
import ipaddress

from testbed.manifests.families import IPV4, family_of
from testbed.manifests.kinds import NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule
from testbed.model.records import PodRecord
from testbed.model.state import RunState

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace, as Kubernetes does


def policies(state: RunState) -> list[NetworkPolicy]:
    return [record.policy for _key, record in sorted(state.policies.items())]


def namespace_labels(state: RunState, namespace: str) -> dict[str, str]:
    record = state.namespaces.get(namespace)
    labels = dict(record.labels if record else {})
    labels[NAMESPACE_NAME_LABEL] = namespace
    return labels


def selects(policy: NetworkPolicy, pod: PodRecord) -> bool:
    """Does the policy apply to this pod record?"""
    return pod.namespace == policy.namespace and policy.pod_selector.matches(pod.labels)


def isolating(all_policies: list[NetworkPolicy], pod: PodRecord,
              direction: str) -> list[NetworkPolicy]:
    """Those of `all_policies` that isolate a pod record in a direction ("Ingress" or
    "Egress")."""
    return [p for p in all_policies if direction in p.policy_types and selects(p, pod)]


def peer_pods(state: RunState, policy: NetworkPolicy, peer: PolicyPeer,
              family: str = IPV4) -> dict[str, str]:
    """{pod key: ip of `family`} of the pods a selector peer matches (none for an
    ipBlock)."""
    if peer.cidr:
        return {}
    out = {}
    for key, pod in state.pods.items():
        ip = pod.address(family)
        if not ip:
            continue
        if peer.namespace_selector is None:
            in_scope = pod.namespace == policy.namespace
        else:
            in_scope = peer.namespace_selector.matches(namespace_labels(state, pod.namespace))
        if in_scope and (peer.pod_selector is None or peer.pod_selector.matches(pod.labels)):
            out[key] = ip
    return out


def in_block(peer: PolicyPeer, ip: str) -> bool:
    """Is `ip` in an ipBlock (and in none of its excepts)? An address of the other family
    never is."""
    address = ipaddress.ip_address(ip)
    block = ipaddress.ip_network(peer.cidr)
    return address.version == block.version and address in block and \
        not any(address in ipaddress.ip_network(e) for e in peer.excepts)


def port_numbers(port: PolicyPort, target_pod: PodRecord | None) -> tuple[int, int] | None:
    """(first, last) port range a PolicyPort admits on the target pod record, or None when a
    named port is not one of the target's."""
    if port.port is None:
        return (1, 65535)
    if isinstance(port.port, str):
        number = target_pod.ports.get(port.port) if target_pod else None
        return (number, number) if number else None
    return (port.port, port.end_port or port.port)


def rule_admits(state: RunState, policy: NetworkPolicy, rule: PolicyRule, peer_ip: str,
                port: int, protocol: str, target_pod: PodRecord | None) -> bool:
    """Does one rule admit a peer address on this port/protocol of target_pod (the pod
    receiving the connection: the policy's pod for ingress, the peer for egress)?"""
    if rule.ports:
        ranges = [port_numbers(p, target_pod) for p in rule.ports if p.protocol == protocol]
        if not any(r and r[0] <= port <= r[1] for r in ranges):
            return False
    if not rule.peers:
        return True
    for peer in rule.peers:
        if peer.cidr and in_block(peer, peer_ip):
            return True
        if not peer.cidr and peer_ip in peer_pods(state, policy, peer,
                                                   family_of(peer_ip)).values():
            return True
    return False


def _pod_by_ip(state: RunState, ip: str) -> tuple[str | None, PodRecord | None]:
    return next(((n, p) for n, p in state.pods.items() if ip in p.addresses), (None, None))


def explain(state: RunState, src_ip: str, dst_ip: str, port: int,
            protocol: str = "TCP") -> tuple[bool, list[str]]:
    """(allowed, [reason lines]) for a new connection src_ip -> dst_ip:port/protocol."""
    lines = []
    src_name, src = _pod_by_ip(state, src_ip)
    dst_name, dst = _pod_by_ip(state, dst_ip)
    allowed = True
    if src is not None:
        ok, why = _direction(state, src_name, src, "Egress", dst_ip, port, protocol, dst)
        allowed &= ok
        lines += why
    else:
        lines.append(f"egress: {src_ip} is no pod: no egress policy applies")
    if dst is not None:
        node = state.nodes[dst.node]
        node_ips = {node.ip, node.ip_v6} | set(node.addresses)
        if src_ip in node_ips:
            lines.append(f"ingress: {src_ip} is {dst_name}'s own node: always allowed")
        else:
            ok, why = _direction(state, dst_name, dst, "Ingress", src_ip, port, protocol, dst)
            allowed &= ok
            lines += why
    else:
        lines.append(f"ingress: {dst_ip} is no pod: no ingress policy applies")
    return allowed, lines


def _direction(state, key, pod, direction, peer_ip, port, protocol, target):
    word = direction.lower()
    isolated = isolating(policies(state), pod, direction)
    if not isolated:
        return True, [f"{word}: no policy selects {key} for {direction}: not isolated, allowed"]
    names = ", ".join(p.name for p in isolated)
    for policy in isolated:
        rules = policy.ingress if direction == "Ingress" else policy.egress
        for i, rule in enumerate(rules):
            if rule_admits(state, policy, rule, peer_ip, port, protocol, target):
                return True, [f"{word}: {key} is isolated by {names}; allowed by "
                              f"{policy.namespace}/{policy.name} {word}[{i}]"]
    return False, [f"{word}: {key} is isolated by {names}; no rule allows {peer_ip} on "
                   f"{protocol} {port}: denied"]
