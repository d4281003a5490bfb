"""The paths a benchmark measures, and which endpoints of a running cluster realise them.

Modes are measured on pod paths; the `bare` baseline on node paths (the underlay alone).
Each pod path is compared with the node path that crosses the same underlay.
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


def _pod(state, key):
    rec = state.pods[key]
    return Endpoint(rec.name, rec.ip, netns=rec.netns)


def _node(state, name):
    rec = state.nodes[name]
    return Endpoint(name, rec.ip, pid=rec.pid)


def _racks(state):
    return len({rec.rack for rec in state.nodes.values()})


def endpoints(path: Path, state: RunState) -> tuple[Endpoint, Endpoint]:
    """(client, server) realising `path` in a running cluster's state."""
    if path.name == "pod-same-node":
        for node in state.nodes:
            pods = _pods_of(state, node)
            if len(pods) >= 2:
                return _pod(state, pods[0]), _pod(state, pods[1])
        raise NotApplicable("no node runs two pods")
    same_rack = path.name in ("pod-cross-node", "node-node")
    if not same_rack and _racks(state) < 2:
        raise NotApplicable("the topology has a single rack")
    for a, b in _node_pairs(state, same_rack):
        if path.kind == "node":
            return _node(state, a), _node(state, b)
        pods_a, pods_b = _pods_of(state, a), _pods_of(state, b)
        if pods_a and pods_b:
            return _pod(state, pods_a[0]), _pod(state, pods_b[0])
    where = "in one rack" if same_rack else "in different racks"
    raise NotApplicable(f"no two nodes {where}" + (" with pods" if path.kind == "pod" else ""))
