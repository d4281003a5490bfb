"""The supervisor's control socket, served for a stand-in cluster over a real Unix socket:
what each request answers, progress during a teardown, and daemon deaths logged once."""
import json
import socket
import threading

import pytest

from testbed.errors import TestbedError
from testbed.host.daemons import DaemonRecord
from testbed.lifecycle import control, supervisor
from testbed.model.records import decode
from testbed.model.state import RunState


class StandInCluster:
    """What serve() uses of a Cluster."""

    def __init__(self, run_dir):
        self.state = RunState(str(run_dir), "c1", status="ready")
        self.daemons = {"forwarder@node1": DaemonRecord("node1", 11, True, "running"),
                        "forwarder@node2": DaemonRecord("node2", 12, False,
                                                        "killed by signal 9")}
        self.timings = {"down_s": 0.5}
        self.control_plane = None  # no API server: nothing to revive, no controllers
        self.restarted = []

    def check_daemons(self):
        return dict(self.daemons)

    def restart_daemon(self, node):
        if node not in ("node1", "node2"):
            raise TestbedError(f"no node {node!r} in cluster c1")
        self.restarted.append(node)
        self.daemons[f"forwarder@{node}"] = DaemonRecord(node, 13, True, "running")
        return self.check_daemons()

    def down(self, progress=None):
        for step in ("ending the containers of 4 pods", "removing namespaces"):
            progress(step)
        return ["netns x.c1 is held open by pid 99"]


@pytest.fixture
def served(tmp_path):
    """A function that starts serving a stand-in cluster (in the test, so that what it logs
    is the test's output)."""
    threads = []

    def start():
        cluster = StandInCluster(tmp_path)
        threads.append(threading.Thread(target=supervisor.serve, daemon=True,
                                        args=(cluster, supervisor.Following(cluster))))
        threads[0].start()
        return cluster, threads[0]
    yield start
    for thread in threads:
        thread.join(timeout=5)


def ask(cluster, op, **args):
    for _ in range(100):  # until the server has bound its socket
        try:
            return control.request(cluster.state, op, timeout=5, **args)
        except (FileNotFoundError, ConnectionRefusedError):
            threading.Event().wait(0.02)
    raise AssertionError("the supervisor never listened")


def test_requests_are_answered_and_down_ends_the_service(served, capsys):
    cluster, thread = served()
    assert ask(cluster, "status") == {"ok": True, "status": "ready"}
    daemons = decode(dict[str, DaemonRecord], ask(cluster, "daemons")["daemons"])
    assert daemons["forwarder@node2"] == DaemonRecord("node2", 12, False, "killed by signal 9")
    assert ask(cluster, "restart", node="node9") == {"ok": False,
                                                     "error": "no node 'node9' in cluster c1"}
    restarted = ask(cluster, "restart", node="node2")
    assert restarted["ok"] and restarted["daemons"]["forwarder@node2"]["alive"]
    assert ask(cluster, "frobnicate") == {"ok": False, "error": "unknown request 'frobnicate'"}
    missing = ask(cluster, "apply", path="/nonexistent/shop.yaml")
    assert not missing["ok"] and "/nonexistent/shop.yaml" in missing["error"]
    seen = []
    reply = control.request(cluster.state, "down", timeout=5, progress=seen.append)
    assert seen == ["ending the containers of 4 pods", "removing namespaces"]
    assert reply == {"ok": False, "left": ["netns x.c1 is held open by pid 99"],
                     "timings": {"down_s": 0.5}}
    thread.join(timeout=5)
    assert not thread.is_alive()
    # the death was logged once, however often the daemons were looked at
    assert capsys.readouterr().err.count("forwarder@node2 (pid 12) killed by signal 9") == 1


def test_a_line_that_is_not_json_gets_an_error_not_a_crash(served):
    cluster, _thread = served()
    ask(cluster, "status")  # listening
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(cluster.state.control_socket)
        sock.sendall(b"{not json\n")
        reply = json.loads(sock.makefile().readline())
    assert reply == {"ok": False, "error": "unknown request None"}
    assert ask(cluster, "status")["ok"]  # still serving
    ask(cluster, "down")
