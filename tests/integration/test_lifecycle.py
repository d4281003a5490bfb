"""Bring-up and teardown through the `testbed` command: nothing of a run may remain after
`down`, after an exception in the middle of a build, or after `clean` following SIGKILL."""
import os
import signal
import subprocess
import sys
import time

import pytest

from testbed.errors import TestbedError
from testbed.host import netns, processes
from testbed.host.processes import pid_is
from testbed.kubelet import runtime
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.model.state import RunState, run_dir_for

from .conftest import TOPO, Footprint, run_testbed, unique_name


def owned_processes(name):
    return RunState.load(run_dir_for(name)).owned.pids


def test_up_exec_get_down_leaves_nothing(require):
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()
    up = run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "vxlan", "--no-cli",
                     "--name", name, check=True)
    assert f"cluster {name} is up" in up.stdout and "pod MTU 1450" in up.stdout
    pids = owned_processes(name)
    assert len(pids) >= 2 + 1 + 4  # two node shells, the rack, a container per pod

    pods = run_testbed("get", "pods", "-o", "wide", "--name", name, check=True).stdout
    assert "node2-pod2" in pods and "10.244.1." in pods and f"node2-pod2.default.{name}" in pods
    ping = run_testbed("exec", "--name", name, "node1-pod1", "--", "ping", "-c1", "-W2",
                       "10.244.1.2", check=True)
    assert "1 received" in ping.stdout
    route = run_testbed("exec", "--name", name, "node2", "--", "ip", "route", check=True)
    assert "10.244.0.0/24 via 10.244.0.0 dev flannel.1 onlink" in route.stdout
    failing = run_testbed("exec", "--name", name, "node1-pod1", "--", "false")
    assert failing.returncode == 1, "exec must pass the command's exit status through"
    unknown = run_testbed("exec", "--name", name, "nope", "--", "true")
    assert unknown.returncode == 2 and "no pod 'nope' in namespace default" in unknown.stderr
    # daemons a user started in a pod and in a node, detached from testbed's own processes
    strays = []
    for target in ("node1-pod1", "node2"):
        out = run_testbed("exec", "--name", name, target, "--", "sh", "-c",
                          "setsid sleep 600 >/dev/null 2>&1 & echo $!", check=True).stdout
        pid = int(out.split()[-1])
        strays.append(processes.Process(pid, processes.process_start_time(pid),
                                        f"sleep started in {target}"))

    down = run_testbed("down", "--name", name, check=True)
    assert f"cluster {name} is down" in down.stdout
    assert Footprint().leftovers(before, pids + strays) == []


def test_exception_in_the_middle_of_a_build_tears_everything_down(require, monkeypatch):
    require("vxlan", "bridge", "veth")
    before = Footprint()
    attached = []
    real_create = runtime.Runtime.create_pod

    def failing_create(self, pod, node, netconf):
        if len(attached) == 2:
            raise RuntimeError("injected failure while attaching the third pod")
        attached.append(pod.name)
        return real_create(self, pod, node, netconf)

    monkeypatch.setattr(runtime.Runtime, "create_pod", failing_create)
    cluster = Cluster.create(load_spec(TOPO / "two-racks.yaml", unique_name()), "vxlan")
    seen_pids = []
    monkeypatch.setattr(cluster.state, "own_pid", _recording(cluster.state.own_pid, seen_pids))
    with pytest.raises(RuntimeError, match="injected failure"):
        with cluster:
            pass
    assert len(attached) == 2 and seen_pids
    assert Footprint().leftovers(before, seen_pids) == []


def _recording(own_pid, seen):
    def record(pid, what):
        entry = own_pid(pid, what)
        seen.append(entry)
        return entry
    return record


@pytest.mark.parametrize("mode, topo, extra, needs", [
    ("vxlan", "two-racks.yaml", [], ("vxlan", "bridge", "veth")),
    # OVS daemons of the fabric and of every node, two controllers, nft tables
    ("openflow", "two-racks.yaml", ["--underlay", "ovs"],
     ("ovs-vswitchd", "os-ken", "cni/testbed-ovs")),
    # pinned programs and maps outside every namespace
    ("ebpf", "default.yaml", [], ("bpftool", "bpf/datapath.o", "cni/testbed-cilium")),
])
def test_clean_after_sigkill_of_the_owner_leaves_nothing(require, mode, topo, extra, needs):
    require(*needs)
    before, name = Footprint(), unique_name()
    run_testbed("up", "--topo", TOPO / topo, "--mode", mode, *extra, "--no-cli",
                "--name", name, check=True)
    state = RunState.load(run_dir_for(name))
    pids = state.owned.pids
    supervisor = state.supervisor
    os.kill(supervisor.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_is(supervisor.pid, supervisor.start):
        time.sleep(0.05)
    assert "owner died" in run_testbed("status").stdout
    assert Footprint().leftovers(before, pids), "a killed run should leave something to clean"
    clean = run_testbed("clean", check=True)
    assert "removed netns node1-pod1" in clean.stdout
    assert Footprint().leftovers(before, pids) == []
    assert run_testbed("clean", check=True).stdout.strip() == "nothing to clean"


def test_host_gw_across_racks_is_refused_before_anything_is_built(require):
    before = Footprint()
    proc = run_testbed("up", "--topo", TOPO / "two-racks.yaml", "--mode", "host-gw", "--no-cli",
                       "--name", unique_name())
    assert proc.returncode == 2
    assert "host-gw needs every node on one L2 segment" in proc.stderr
    assert "rack2: node3, node4" in proc.stderr and "Traceback" not in proc.stderr
    assert Footprint().leftovers(before) == []


@pytest.mark.parametrize("text, words", [
    ("nodes: [{name: a, colour: red}]", "nodes[0].colour = 'red': unknown key"),
    ("podCIDR: 10.244.0.0/33\nnodes: [{name: a}]", "podCIDR = '10.244.0.0/33'"),
    ("nodes: [{name: a}, {name: a}]", "nodes[1].name = 'a': duplicate name"),
    ("nodes: [{name: a-name-far-too-long}]", "at most 15 fit a Linux interface name"),
    ("mode: ipvlan\nnodes: [{name: a}]", "mode = 'ipvlan': unknown mode"),
    ("nodes: [{name: a\n", "malformed YAML"),
])
def test_bad_topology_gives_one_clear_error_and_builds_nothing(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = Footprint()
    proc = run_testbed("up", "--topo", path, "--no-cli")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"testbed: {path}: ") and words in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert Footprint().leftovers(before) == []


def test_a_namespace_left_with_a_sandbox_name_is_refused_and_kept(require):
    """A network namespace the testbed did not make is never taken over or removed."""
    require("vxlan", "bridge", "veth")
    name = unique_name()
    stray = f"node2-pod1.default.{name}"
    netns.run(["ip", "netns", "add", stray])
    try:
        before = Footprint()
        proc = run_testbed("up", "--topo", TOPO / "default.yaml", "--no-cli", "--name", name)
        assert proc.returncode == 2 and f"network namespaces {stray} already exist" in \
            proc.stderr
        assert Footprint().leftovers(before) == [] and stray in netns.netns_list()
    finally:
        netns.run(["ip", "netns", "del", stray])


def test_interactive_cli_runs_pod_and_node_commands_then_tears_down(require):
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()
    kubectl = [os.path.join(os.path.dirname(sys.executable), "kubectl"), "--kubeconfig",
               f"{run_dir_for(name)}/control-plane/kubeconfig"]
    # kubectl, from Mininet's `sh` (a host shell), drives the console's cluster too
    script = (f"sh {' '.join(kubectl)} run web --image=nginx\n"
              f"sh {' '.join(kubectl)} wait --for=condition=Ready pod/web --timeout=20s\n"
              "pods\n"
              "node1-pod1 ping -c1 -W2 node2-pod2 | grep -c ' 0% packet loss'\n"
              "node2 ip route | grep flannel.1\n"
              "exit\n")
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", "up", "--topo",
                           str(TOPO / "default.yaml"), "--name", name],
                          input=script, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rows = [line.replace("testbed> ", "").split() for line in out.splitlines()]
    row = next(r for r in rows if r[1:2] == ["node2-pod2"])  # NAMESPACE NAME ... AGE ...
    assert row[:5] + row[6:] == ["default", "node2-pod2", "1/1", "Running", "0", "10.244.1.3",
                                 "node2", f"node2-pod2.default.{name}"]
    assert "\n1\n" in out.replace("testbed> ", "\n"), "pod ping by name must succeed"
    assert "10.244.0.0/24 via 10.244.0.0 dev flannel.1 onlink" in out
    assert "pod/web condition met" in out
    web = next(r for r in rows if r[1:2] == ["web"])
    assert web[:4] == ["default", "web", "1/1", "Running"] and web[-1] == f"web.default.{name}"
    assert Footprint().leftovers(before) == []


def test_down_and_sigterm_end_an_interactive_cluster(require):
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()
    proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "up", "--topo",
                             str(TOPO / "default.yaml"), "--name", name],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if RunState.load(run_dir_for(name)).status == "ready":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        pids = owned_processes(name)
        down = run_testbed("down", "--name", name, check=True)
        assert f"cluster {name} is down" in down.stdout
        proc.wait(timeout=30)
        assert Footprint().leftovers(before, pids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_during_a_build_tears_down_what_was_built(require, tmp_path):
    require("vxlan", "bridge", "veth")
    topo = tmp_path / "big.yaml"
    topo.write_text("nodes:\n" + "".join(f"  - {{name: n{i}, pods: 4}}\n" for i in range(12)))
    before, name = Footprint(), unique_name()
    proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", "up", "--topo", str(topo),
                             "--no-cli", "--name", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline and len(pids) < 20:  # some pods are being attached
        try:
            pids = RunState.load(run_dir_for(name)).owned.pids
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    assert len(pids) >= 20, "the build should be under way"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "torn down" in err
    assert Footprint().leftovers(before, pids) == []


def test_clean_by_name_ends_a_live_cluster_through_its_owner(require):
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()
    run_testbed("up", "--topo", TOPO / "default.yaml", "--no-cli", "--name", name, check=True)
    pids = owned_processes(name)
    clean = run_testbed("clean", "--name", name, check=True)
    assert "asking supervisor" in clean.stdout
    assert Footprint().leftovers(before, pids) == []


def test_a_mode_whose_requirements_are_missing_is_refused_clearly(monkeypatch):
    from testbed.lifecycle import doctor
    real = doctor.capabilities
    monkeypatch.setattr(doctor, "capabilities", lambda checks=None: {**real(), "tun": False})
    before = Footprint()
    with pytest.raises(TestbedError, match="mode udp needs tun, which this machine lacks"):
        Cluster.create(load_spec(TOPO / "default.yaml", unique_name()), "udp")
    assert Footprint().leftovers(before) == []
