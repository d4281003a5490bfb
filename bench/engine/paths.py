"""The paths a benchmark measures, and which endpoints of a running cluster realise them.

Modes are measured on pod paths; the `bare` baseline on node paths (the underlay alone).
Each pod path is compared with the node path that crosses the same underlay. In a dual-stack
run a path is realised over the endpoints' addresses of one family (4 or 6).
"""
from collections.abc import Sequence
from dataclasses import dataclass

from testbed.host import netns
from testbed.model.state import RunState


@dataclass(frozen=True)
class Path:
    name: str
    kind: str       # "pod" or "node"
    baseline: str   # the node path a pod path is compared with ("" for node paths)
    title: str


PATHS = (
    Path("pod-same-node", "pod", "node-node", "pod to pod, same node"),
    Path("pod-cross-node", "pod", "node-node", "pod to pod, other node"),
    Path("pod-cross-rack", "pod", "node-cross-rack", "pod to pod, other rack"),
    Path("node-node", "node", "", "node to node (underlay)"),
    Path("node-cross-rack", "node", "", "node to node, other rack"),
)
BY_NAME = {p.name: p for p in PATHS}


class NotApplicable(Exception):
    """The path cannot be realised on this topology or mode; the message says why."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    ip: str
    pid: int = 0      # a node's shell, for nodes
    netns: str = ""   # a pod's sandbox, for pods

    def argv(self, cmd: Sequence[object]) -> list[str]:
        return netns.in_pod(self.netns, cmd) if self.netns else netns.in_node(self.pid, cmd)


def _node_pairs(state, same_rack):
    names = list(state.nodes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if (state.nodes[a].rack == state.nodes[b].rack) == same_rack:
                yield a, b


def _pods_of(state, node):
    return [key for key, rec in state.pods.items() if rec.node == node]


def _of_family(addresses, family, what):
    found = next((a for a in addresses if a and (":" in a) == (family == 6)), None)
    if found is None:
        raise NotApplicable(f"{what} has no IPv{family} address")
    return found


def _pod(state, key, family=4):
    rec = state.pods[key]
    return Endpoint(rec.name, _of_family(rec.addresses, family, f"pod {key}"), netns=rec.netns)


def _node(state, name, family=4):
    rec = state.nodes[name]
    return Endpoint(name, _of_family([rec.ip, rec.ip_v6], family, f"node {name}"), pid=rec.pid)


def _racks(state):
    return len({rec.rack for rec in state.nodes.values()})


def endpoints(path: Path, state: RunState, family: int = 4) -> tuple[Endpoint, Endpoint]:
    """(client, server) realising `path` in a running cluster's state, over their addresses
    of `family`."""
    if path.name == "pod-same-node":
        for node in state.nodes:
            pods = _pods_of(state, node)
            if len(pods) >= 2:
                return _pod(state, pods[0], family), _pod(state, pods[1], family)
        raise NotApplicable("no node runs two pods")
    same_rack = path.name in ("pod-cross-node", "node-node")
    if not same_rack and _racks(state) < 2:
        raise NotApplicable("the topology has a single rack")
    for a, b in _node_pairs(state, same_rack):
        if path.kind == "node":
            return _node(state, a, family), _node(state, b, family)
        pods_a, pods_b = _pods_of(state, a), _pods_of(state, b)
        if pods_a and pods_b:
            return _pod(state, pods_a[0], family), _pod(state, pods_b[0], family)
    where = "in one rack" if same_rack else "in different racks"
    raise NotApplicable(f"no two nodes {where}" + (" with pods" if path.kind == "pod" else ""))
