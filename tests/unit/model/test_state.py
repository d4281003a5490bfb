"""The run's state file: typed records written ahead of every change, read back as they were."""
import json

import pytest

from testbed.host.daemons import DaemonRecord
from testbed.host.processes import Process
from testbed.model import state as statemod
from testbed.model.records import ContainerProcess, PodRecord, ServicePortRecord, ServiceRecord
from testbed.model.state import RunState


@pytest.fixture
def run_root(tmp_path, monkeypatch):
    monkeypatch.setattr(statemod, "RUN_ROOT", str(tmp_path))
    return tmp_path


def on_disk(state):
    with open(state.path) as f:
        return json.load(f)


def test_records_survive_a_save_and_a_load_with_their_types(run_root):
    state = RunState.create("c1", mode="vxlan", topology="/t.yaml")
    state.pods["shop/web"] = PodRecord(
        "web", "shop", "node1", "web.shop.c1", {"app": "web"}, ip="10.244.0.5",
        containers={"main": ContainerProcess(42, 7, "pod shop/web container main", ["sleep"])},
        ports={"http": 8080})
    state.services["shop/web"] = ServiceRecord(
        "NodePort", "10.96.0.2", {"app": "web"},
        [ServicePortRecord(80, "http", "http", 30080), ServicePortRecord(81, 8081)])
    state.save()
    back = RunState.load(str(run_root / "c1"))
    assert back == state  # every field, nested records included
    assert isinstance(back.pods["shop/web"].containers["main"], ContainerProcess)
    assert back.services["shop/web"].ports[0].target_port == "http"  # a name stays a name
    assert back.services["shop/web"].ports[1].target_port == 8081
    assert on_disk(back)["pods"]["shop/web"]["containers"]["main"]["pid"] == 42  # plain JSON
    assert "dir" not in on_disk(back)  # where the file is, not what it says


def test_ownership_is_written_before_it_is_needed(run_root):
    state = RunState.create("c1")
    state.own("netns", "node1.c1")
    assert on_disk(state)["owned"]["netns"] == ["node1.c1"]  # at once: write-ahead
    entry = state.own_pid(1, "init, for the test")
    assert on_disk(state)["owned"]["pids"] == [{"pid": 1, "start": entry.start,
                                               "what": "init, for the test"}]
    state.disown_pid(1)
    assert on_disk(state)["owned"]["pids"] == []


def test_deferred_saves_write_once_at_the_end(run_root):
    state = RunState.create("c1")
    state.own("netns", "a.c1")
    state.own("netns", "b.c1")
    with state.deferred_saves():
        state.disown("netns", "a.c1")
        state.disown("netns", "b.c1")
        assert on_disk(state)["owned"]["netns"] == ["a.c1", "b.c1"]  # not yet
    assert on_disk(state)["owned"]["netns"] == []


def test_ownership_is_journaled_at_once_even_while_saves_wait(run_root):
    state = RunState.create("c1")
    with state.deferred_saves():
        state.own("netns", "a.c1")
        state.own_pid(1, "init, for the test")
        state.own("netns", "b.c1")
        state.disown("netns", "a.c1")
        assert on_disk(state)["owned"]["netns"] == []  # the snapshot waits...
        seen = RunState.load(state.dir)  # ...a reader (`clean`) sees the journal's lines
        assert seen.owned.netns == ["b.c1"] and [p.pid for p in seen.owned.pids] == [1]
    assert on_disk(state)["owned"]["netns"] == ["b.c1"]
    assert open(state.journal_path).read() == ""  # in the snapshot now


def test_a_journal_replayed_over_a_snapshot_that_holds_it_changes_nothing(run_root):
    state = RunState.create("c1")
    state.own("netns", "a.c1")
    # a writer killed after writing the snapshot, before emptying the journal, and one killed
    # in the middle of a line
    with open(state.journal_path, "a") as f:
        f.write('{"own": "netns", "item": "a.c1"}\n{"own": "netns", "item": "b.c1"}\n'
                '{"disown": "netns", "item": "b.c1"}\n{"own": "netns", "item": "c.c1"}\n'
                '{"own": "netns", "it')
    assert RunState.load(state.dir).owned.netns == ["a.c1", "c.c1"]


def test_update_refuses_a_field_the_state_does_not_have(run_root):
    state = RunState.create("c1")
    state.update(status="ready", pod_mtu=1450)
    assert (on_disk(state)["status"], on_disk(state)["pod_mtu"]) == ("ready", 1450)
    with pytest.raises(AttributeError, match="no field 'stauts'"):
        state.update(stauts="ready")
    state.update(daemons={"bird@node1": DaemonRecord("node1", 7, False, "killed by signal 9")},
                 supervisor=Process(1, 2, "owner"), timings={"up_s": 1.5})
    assert on_disk(state)["daemons"]["bird@node1"]["state"] == "killed by signal 9"
    with pytest.raises(TypeError, match="RunState.supervisor must be a Process, not dict"):
        state.update(supervisor={"pid": 1, "start": 2})  # a record, not its JSON
    with pytest.raises(TypeError, match="network_policy must be a PolicyEnforcement"):
        RunState.create("c2", network_policy={"enforced": True})
    assert not (run_root / "c2").exists()  # refused before its directory was made


def test_a_newer_files_unknown_keys_are_ignored_and_a_broken_file_is_named(run_root):
    state = RunState.create("c1", supervisor=Process(1, 2, "owner"))
    doc = on_disk(state)
    doc["a_field_from_the_future"] = {"x": 1}
    open(state.path, "w").write(json.dumps(doc))
    assert RunState.load(state.dir).supervisor == Process(1, 2, "owner")
    doc["nodes"] = {"node1": {"ip": "192.168.1.11"}}  # no pid, no rack
    open(state.path, "w").write(json.dumps(doc))
    with pytest.raises(ValueError, match=r"c1/state.json: not a state file this version reads"):
        RunState.load(state.dir)


def test_a_state_file_an_earlier_version_wrote_is_read(run_root):
    """A run left behind across an upgrade: its records are read, so clean can remove it."""
    doc = json.loads(open(RunState.create("old").path).read())
    doc["policies"] = {"default/deny": {
        "name": "deny", "namespace": "default", "policy_types": ["Ingress"],
        "pod_selector": {"match_labels": [], "match_expressions": []},
        "ingress": [], "egress": [], "created": 5.0}}
    del doc["mode_facts"], doc["adopted"]  # keys an earlier version did not write
    doc["openflow"] = {"control_socket": "/run/testbed/old/openflow/control.sock"}
    doc["nodes"] = {"node1": {"pid": 10, "ip": "192.168.1.11", "rack": "rack1",
                              "lease": "10.244.0.0/24", "vtep_mac": "aa:bb:cc:dd:ee:ff"}}
    open(str(run_root / "old" / "state.json"), "w").write(json.dumps(doc))
    state = RunState.load(str(run_root / "old"))
    assert state.policies["default/deny"].policy.name == "deny"
    assert state.policies["default/deny"].created == 5.0
    assert state.mode_facts["control_socket"].endswith("control.sock")
    assert state.nodes["node1"].lease == "10.244.0.0/24"
