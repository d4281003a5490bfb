"""Run states for unit tests, written as state documents (what the state file holds)."""
import copy

from testbed.manifests.kinds import policy_to_record
from testbed.model.state import RunState


def state_from(doc: dict, policies=()) -> RunState:
    """A RunState from a state document as a test writes it, decoded as the state file is. What
    a test leaves out of it gets a plain value: pods their name and namespace from their key
    ("namespace/name") and a sandbox name, nodes a rack and a shell PID. `policies`:
    NetworkPolicy objects to hold, as `apply` records them."""
    doc = copy.deepcopy(doc)
    doc.setdefault("name", "t")
    for key, pod in doc.get("pods", {}).items():
        namespace, _, name = key.rpartition("/")
        pod.setdefault("name", name)
        pod.setdefault("namespace", namespace or "default")
        pod.setdefault("node", "node1")
        pod.setdefault("netns", f"{pod['name']}.{pod['namespace']}.t")
    for node in doc.get("nodes", {}).values():
        node.setdefault("pid", 0)
        node.setdefault("rack", "rack1")
        node.setdefault("ip", "")
    doc.setdefault("policies", {}).update(
        {f"{p.namespace}/{p.name}": {"policy": policy_to_record(p)} for p in policies})
    return RunState.from_json(doc, "/nonexistent")
