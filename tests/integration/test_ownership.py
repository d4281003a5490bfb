"""The testbed never loses track of what it made: teardown through signals and kills, `clean`
that spares live clusters, a datapath that outlives its owner, and exit codes that tell."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from testbed.host import netns
from testbed.host.processes import pid_is
from testbed.model.state import RunState, run_dir_for

from .conftest import REPO, TOPO, Footprint, in_pod, pod, run_testbed, unique_name


def state_of(name):
    return RunState.load(run_dir_for(name))


def wait_for(predicate, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(name):
    try:
        return state_of(name).status
    except (OSError, ValueError, KeyError):
        return None


def up(name, topo="default.yaml", *extra):
    run_testbed("up", "--topo", topo if os.path.isabs(str(topo)) else TOPO / topo,
                "--no-cli", "--name", name, *extra, check=True)
    return state_of(name)


def grid(tmp_path, nodes, pods):
    topo = tmp_path / "grid.yaml"
    topo.write_text("nodes:\n" + "".join(f"  - {{name: n{i}, pods: {pods}}}\n"
                                          for i in range(nodes)))
    return topo


def pings(state, src, dst_ip):
    return subprocess.run(in_pod(state, src, ["ping", "-c1", "-W2", dst_ip]),
                          capture_output=True).returncode == 0


def full_matrix(state):
    names = [rec.name for rec in state.pods.values() if rec.namespace == "default"]
    return all(pings(state, a, pod(state, b).ip) for a in names for b in names if a != b)


def kill_owner(state):
    """SIGKILL a run's owner, as a crash would, and wait for its death."""
    owner = state.supervisor
    os.kill(owner.pid, signal.SIGKILL)
    wait_for(lambda: not pid_is(owner.pid, owner.start), what="the owner's death")
    return owner


def orphan(name, *extra):
    """A cluster brought up with `up --no-cli`, whose owner was then killed: (state, pids)."""
    state = up(name, "default.yaml", *extra)
    kill_owner(state)
    return state, state.owned.pids


def all_pids(name):
    return state_of(name).owned.pids


def test_down_waits_for_a_supervisor_slower_than_the_request_deadline(require, tmp_path):
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()
    up(name, grid(tmp_path, 4, 4))
    pids = all_pids(name)
    env = {**os.environ, "TESTBED_REQUEST_TIMEOUT_S": "0.05"}  # far less than the teardown
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", "down", "--name", name],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"cluster {name} is down" in proc.stdout and "leftovers" not in proc.stdout
    assert Footprint().leftovers(before, pids) == []


def test_sigterm_twice_in_the_middle_of_teardown_then_clean_leaves_nothing(require, tmp_path):
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()
    state = up(name, grid(tmp_path, 4, 6))
    pids, owner = all_pids(name), state.supervisor
    down = subprocess.Popen([sys.executable, "-m", "testbed.cli", "down", "--name", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    wait_for(lambda: status_of(name) == "tearing down", what="the teardown to begin")
    os.kill(owner.pid, signal.SIGTERM)
    time.sleep(0.05)
    if pid_is(owner.pid, owner.start):
        os.kill(owner.pid, signal.SIGTERM)
    _out, err = down.communicate(timeout=120)
    assert down.returncode == 0, err
    run_testbed("clean", check=True)
    assert Footprint().leftovers(before, pids) == []


@pytest.mark.parametrize("phase", ["up", "down"])
def test_sigkill_at_random_points_then_clean_leaves_nothing(require, tmp_path, phase):
    require("vxlan", "bridge", "veth")
    rng = random.Random(15)
    topo = grid(tmp_path, 3, 4)
    for delay in sorted(rng.uniform(0.05, 1.5) for _ in range(3)):
        before, name = Footprint(), unique_name()
        seen = []
        if phase == "up":
            proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "up", "--topo",
                                     str(topo), "--no-cli", "--name", name],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    cwd=REPO)
            wait_for(lambda: status_of(name) is not None, what="the run to start")
        else:
            up(name, topo)
            proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "down", "--name",
                                     name], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=REPO)
            wait_for(lambda: status_of(name) == "tearing down", what="the teardown")
        owner = state_of(name).supervisor
        seen += all_pids(name)
        time.sleep(delay)
        try:
            seen += all_pids(name)
        except OSError:
            pass  # already finished
        if pid_is(owner.pid, owner.start):
            os.kill(owner.pid, signal.SIGKILL)
        proc.wait(timeout=120)
        run_testbed("clean", check=True)
        assert Footprint().leftovers(before, seen) == [], f"SIGKILL {delay:.2f} s into {phase}"


def test_clean_spares_a_live_cluster_and_removes_a_dead_one(require):
    require("vxlan", "bridge", "veth")
    before = Footprint()
    live, dead = unique_name(), unique_name()
    live_state = up(live)
    _dead_state, dead_pids = orphan(dead)
    clean = run_testbed("clean")
    assert clean.returncode == 0, clean.stderr
    assert f"cluster {live} is live" in clean.stdout and f"testbed down --name {live}" in \
        clean.stdout
    assert not os.path.exists(run_dir_for(dead))
    assert all(f".{dead}" not in n for n in netns.netns_list())
    assert not any(pid_is(p.pid, p.start) for p in dead_pids)
    assert status_of(live) == "ready" and full_matrix(live_state)
    assert run_testbed("down", "--name", live).returncode == 0
    assert Footprint().leftovers(before, dead_pids) == []


@pytest.mark.parametrize("mode, needs", [("bgp", ("bird",)), ("udp", ("tun",))])
def test_the_datapath_outlives_its_owner(require, mode, needs):
    require("bridge", "veth", *needs)
    before, name = Footprint(), unique_name()
    state, pids = orphan(name, "--mode", mode)
    time.sleep(0.5)  # what would die with the owner has had time to
    assert full_matrix(state), "pods must still reach each other across nodes"
    status = run_testbed("status").stdout
    assert "owner died; datapath still up" in status
    daemons = run_testbed("daemons", "--name", name)
    assert daemons.returncode == 0 and "running (owner died)" in daemons.stdout
    node = f"node1.{name}"
    assert node in netns.netns_list()  # the node's namespace, by name, for any shell
    route = run_testbed("exec", "--name", name, "node1", "--", "ip", "route")
    assert route.returncode == 0 and "10.244." in route.stdout  # pod routes still there
    down = run_testbed("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert Footprint().leftovers(before, pids) == []


def test_sigint_to_a_background_up_aborts_it_and_removes_what_was_built(require, tmp_path):
    """Started in the background by a script, `up` inherits SIGINT ignored; it still stops."""
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()

    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "up", "--topo",
                             str(grid(tmp_path, 12, 4)), "--no-cli", "--name", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, preexec_fn=ignore_sigint)
    wait_for(lambda: len(_owned_so_far(name)) >= 20, what="the build to get going")
    pids = _owned_so_far(name)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "torn down" in err
    assert Footprint().leftovers(before, pids + _owned_so_far(name)) == []


def _owned_so_far(name):
    try:
        return all_pids(name)
    except (OSError, ValueError):
        return []


def test_up_with_the_name_of_a_running_cluster_names_it(require):
    require("vxlan", "bridge", "veth")
    name = unique_name()
    state = up(name)
    try:
        again = run_testbed("up", "--topo", TOPO / "default.yaml", "--no-cli", "--name", name)
        assert again.returncode == 2
        assert f"cluster {name!r} is already running" in again.stderr
        assert f"owner pid {state.supervisor.pid}" in again.stderr
        assert "Traceback" not in again.stderr and len(again.stderr.splitlines()) == 1
        assert status_of(name) == "ready"
    finally:
        run_testbed("down", "--name", name, check=True)


def test_down_fails_loudly_when_a_namespace_it_owns_is_held_by_a_stranger(require):
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()
    state = up(name)
    pids = state.owned.pids
    sandbox = pod(state, "node1-pod1").netns
    # a process the testbed did not start, outside the pod, holding its namespace open
    stranger = subprocess.Popen(["sleep", "600"], stdin=open(netns.netns_path(sandbox)))
    try:
        down = run_testbed("down", "--name", name)
        assert down.returncode == 1
        assert f"netns {sandbox} is held open by pid {stranger.pid} (sleep)" in down.stderr
        assert sandbox in netns.netns_list()  # left, and still recorded
        assert sandbox in state_of(name).owned.netns
    finally:
        stranger.kill()
        stranger.wait()
    clean = run_testbed("clean")
    assert clean.returncode == 0 and f"removed netns {sandbox}" in clean.stdout
    assert Footprint().leftovers(before, pids) == []


WEB = """\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
    - name: agnhost
      image: registry.k8s.io/e2e-test-images/agnhost:2.47
      args: [netexec, --http-port=8080]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.mark.parametrize("mode, needs", [("bgp", ("bird",)), ("udp", ("tun",))])
def test_a_new_owner_adopts_a_cluster_whose_owner_died(require, tmp_path, mode, needs):
    require("bridge", "veth", "iptables", *needs)
    before, name = Footprint(), unique_name()
    state, pids = orphan(name, "--mode", mode)
    owner = state.supervisor
    adopted = run_testbed("up", "--adopt", name)
    assert adopted.returncode == 0, adopted.stderr
    assert f"cluster {name} adopted" in adopted.stdout
    new_owner = state_of(name).supervisor
    assert new_owner.pid != owner.pid and pid_is(new_owner.pid, new_owner.start)
    assert status_of(name) == "ready" and "owner died" not in run_testbed("status").stdout
    daemons = run_testbed("daemons", "--name", name)
    assert daemons.returncode == 0 and "running" in daemons.stdout, daemons.stderr
    assert run_testbed("up", "--adopt", name).returncode == 2  # it has a live owner now
    # the new owner changes the cluster as the old one would have
    (tmp_path / "web.yaml").write_text(WEB)
    applied = run_testbed("apply", "-f", tmp_path / "web.yaml", "--name", name)
    assert applied.returncode == 0, applied.stderr
    data = state_of(name)
    ip = data.services["default/web"].cluster_ip
    probe = run_testbed("exec", "--name", name, "node1-pod1", "--", "/agnhost", "connect",
                        f"{ip}:80", "--timeout=3s")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    pids += state_of(name).owned.pids
    down = run_testbed("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert Footprint().leftovers(before, pids) == []


def test_adoption_is_refused_where_the_records_cannot_rebuild_the_owner(require):
    require("veth", "ovs-vswitchd", "os-ken", "cni/testbed-ovs")
    before, name = Footprint(), unique_name()
    _state, pids = orphan(name, "--mode", "openflow")
    refused = run_testbed("up", "--adopt", name)
    assert refused.returncode == 2 and "cannot be adopted yet" in refused.stderr
    assert f"testbed down --name {name}" in refused.stderr
    assert "owner died" in run_testbed("status").stdout  # nothing was changed
    assert run_testbed("down", "--name", name).returncode == 0
    assert Footprint().leftovers(before, pids) == []
