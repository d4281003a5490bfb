"""The paths a benchmark measures, and which endpoints of a running cluster realise them.

Modes are measured on pod paths; the `bare` baseline on node paths (the underlay alone).
Each pod path is compared with the node path that crosses the same underlay.
"""
from dataclasses import dataclass

from testbed.host import netns


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

    def argv(self, cmd):
        return netns.in_pod(self.netns, cmd) if self.netns else netns.in_node(self.pid, cmd)


def _node_pairs(data, same_rack):
    names = list(data["nodes"])
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if (data["nodes"][a]["rack"] == data["nodes"][b]["rack"]) == same_rack:
                yield a, b


def _pods_of(data, node):
    return [key for key, rec in data["pods"].items() if rec["node"] == node]


def _pod(data, key):
    rec = data["pods"][key]
    return Endpoint(rec["name"], rec["ip"], netns=rec["netns"])


def _node(data, name):
    rec = data["nodes"][name]
    return Endpoint(name, rec["ip"], pid=rec["pid"])


def _racks(data):
    return len({rec["rack"] for rec in data["nodes"].values()})


def endpoints(path, data):
    """(client, server) realising `path` in a running cluster's state data."""
    if path.name == "pod-same-node":
        for node in data["nodes"]:
            pods = _pods_of(data, node)
            if len(pods) >= 2:
                return _pod(data, pods[0]), _pod(data, pods[1])
        raise NotApplicable("no node runs two pods")
    same_rack = path.name in ("pod-cross-node", "node-node")
    if not same_rack and _racks(data) < 2:
        raise NotApplicable("the topology has a single rack")
    for a, b in _node_pairs(data, same_rack):
        if path.kind == "node":
            return _node(data, a), _node(data, b)
        pods_a, pods_b = _pods_of(data, a), _pods_of(data, b)
        if pods_a and pods_b:
            return _pod(data, pods_a[0]), _pod(data, pods_b[0])
    where = "in one rack" if same_rack else "in different racks"
    raise NotApplicable(f"no two nodes {where}" + (" with pods" if path.kind == "pod" else ""))
