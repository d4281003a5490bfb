"""Every log of a run by name: containers' outputs apart, the rest `<what>@<where>` from
where the file lies in the run directory."""
import os

from testbed.model import logs
from testbed.model.state import RunState
from tests.unit.states import state_from

FILES = ["supervisor.log", "nodes/node1/kube-proxy.log", "nodes/node1/bird/bird.log",
         "nodes/node1/bird/bird.out", "nodes/node2/udp-forwarder.log",
         "openflow/node1/node1.ovs-vswitchd.log", "openflow/controller.log",
         "fabric/controller.log", "fabric/rack1/rack1.ovs-vswitchd.log",
         "pods/default/node1-pod1/main.log", "pods/kube-system/kube-dns-1/nsd.log",
         "pods/kube-system/kube-dns-1/zone.out", "state.json"]


PROCESS = {"pid": 1, "start": 1}


def run(tmp_path) -> RunState:
    state = state_from({
        "nodes": {"node1": {}, "node2": {}},
        "pods": {"default/node1-pod1": {"ip": "10.244.0.2", "containers": {"main": PROCESS}},
                 "kube-system/kube-dns-1": {"ip": "10.244.1.9", "containers": {"nsd": PROCESS}}}})
    state.dir = str(tmp_path)
    for name in FILES:
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        (tmp_path / name).write_text("x\n")
    return state


def test_each_log_is_named_by_what_and_where(tmp_path):
    state = run(tmp_path)
    assert list(logs.other_logs(state)) == sorted([
        "bird.out@node1", "bird@node1", "controller@fabric", "controller@openflow",
        "kube-proxy@node1", "ovs-vswitchd@node1", "ovs-vswitchd@rack1", "supervisor",
        "udp-forwarder@node2", "zone.out@kube-dns-1"])
    assert logs.other_logs(state)["kube-proxy@node1"] == str(
        tmp_path / "nodes" / "node1" / "kube-proxy.log")


def test_containers_are_listed_apart_whether_or_not_they_wrote(tmp_path):
    state = run(tmp_path)
    found = logs.container_logs(state)
    assert found[("default/node1-pod1", "main")] == str(
        tmp_path / "pods" / "default" / "node1-pod1" / "main.log")
    assert ("kube-system/kube-dns-1", "nsd") in found  # nsd.log: its container's output,
    assert "nsd@kube-dns-1" not in logs.other_logs(state)  # so not listed twice
