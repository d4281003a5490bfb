"""The API server on a real etcd, reached as a user reaches it: kubectl with the kubeconfig
it writes, raw HTTPS with and without the admin's certificate, etcdctl on the store."""
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from testbed.apiserver.controlplane import ControlPlane, admin_context
from testbed.apiserver.etcd import etcd_binary
from testbed.core.state import RunState, run_dir_for
from testbed.errors import TestbedError
from testbed.host.waiting import wait_until

from .conftest import TOPO, Footprint, run_testbed, unique_name


def kubectl_binaries():
    """kubectl 1.37 from the venv, then the machine's own (older) one where there is one."""
    found = []
    for candidate in (os.path.join(os.path.dirname(sys.executable), "kubectl"),
                      "/usr/local/bin/kubectl", "/usr/bin/kubectl"):
        real = os.path.realpath(candidate)
        if os.access(candidate, os.X_OK) and real not in {os.path.realpath(f) for f in found}:
            found.append(candidate)
    return found


@pytest.fixture(scope="module")
def plane():
    try:
        etcd_binary()
    except TestbedError as e:
        pytest.skip(str(e))
    state = RunState.create(unique_name())
    control = ControlPlane(state.name, state.subdir("control-plane"))
    try:
        control.start(state)
        yield control
    finally:
        control.stop(state)
        assert state.owned.pids == []
        shutil.rmtree(state.dir)


def kubectl(binary, plane, *args, check=True, stdin=None):
    proc = subprocess.run([binary, "--kubeconfig", plane.kubeconfig_path, *args],
                          capture_output=True, text=True, input=stdin, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def request(plane, method, path, body=None, context=None, content_type="application/json"):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(f"{plane.server}{path}", data=data, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=context or admin_context(plane.pki),
                                    timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_anonymous_requests_are_refused_and_the_admin_is_let_in(plane):
    anonymous = ssl.create_default_context(cafile=plane.pki.ca_cert)
    code, body = request(plane, "GET", "/api/v1/namespaces", context=anonymous)
    assert code == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"
    code, body = request(plane, "GET", "/api/v1/namespaces")
    assert code == 200
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= {
        n["metadata"]["name"] for n in body["items"]}


@pytest.mark.parametrize("which", [0, 1])
def test_kubectl_creates_lists_patches_and_deletes(plane, which):
    binaries = kubectl_binaries()
    if which >= len(binaries):
        pytest.skip("no second kubectl on this machine")
    k = binaries[which]
    ns = f"k{which}"
    assert kubectl(k, plane, "create", "namespace", ns).stdout.strip() == \
        f"namespace/{ns} created"
    kubectl(k, plane, "-n", ns, "create", "configmap", "conf", "--from-literal=a=1")
    out = kubectl(k, plane, "-n", ns, "get", "configmaps").stdout.splitlines()
    assert out[0].split() == ["NAME", "DATA", "AGE"] and out[1].split()[:2] == ["conf", "1"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {
        "app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}
    assert kubectl(k, plane, "-n", ns, "create", "-f", "-",
                   stdin=json.dumps(pod)).stdout.strip() == "pod/web created"
    head = kubectl(k, plane, "-n", ns, "get", "pods", "-o", "wide").stdout.splitlines()[0]
    assert head.split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    phase = kubectl(k, plane, "-n", ns, "get", "pod", "web", "-o",
                    "jsonpath={.status.phase} {.spec.restartPolicy}").stdout
    assert phase == "Pending Always"
    kubectl(k, plane, "-n", ns, "label", "pod", "web", "tier=front")
    chosen = kubectl(k, plane, "-n", ns, "get", "pods", "-l", "tier=front", "-o", "name")
    assert chosen.stdout.split() == ["pod/web"]
    assert kubectl(k, plane, "-n", ns, "get", "pods", "-l", "tier=back", "-o",
                   "name").stdout == ""
    missing = kubectl(k, plane, "-n", ns, "get", "pod", "nope", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr
    again = kubectl(k, plane, "create", "namespace", ns, check=False)
    assert again.returncode == 1 and f'namespaces "{ns}" already exists' in again.stderr
    bad = dict(pod, metadata={"name": "Bad"})
    refused = kubectl(k, plane, "-n", ns, "create", "-f", "-", stdin=json.dumps(bad),
                      check=False)
    assert refused.returncode == 1
    assert 'The Pod "Bad" is invalid: metadata.name: Invalid value: "Bad"' in refused.stderr
    assert kubectl(k, plane, "delete", "namespace", ns).stdout.strip() == \
        f'namespace "{ns}" deleted'
    gone = kubectl(k, plane, "-n", ns, "get", "configmap", "conf", check=False)
    assert gone.returncode == 1 and "not found" in gone.stderr


def test_objects_sit_in_etcd_under_kube_apiservers_keys(plane):
    request(plane, "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": "store"}}))
    code, made = request(plane, "POST", "/api/v1/namespaces/store/pods", json.dumps({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}))
    assert code == 201
    etcdctl = etcd_binary("etcdctl")
    keys = subprocess.run([etcdctl, "--endpoints", plane.etcd_endpoint, "get", "--prefix",
                           "--keys-only", "/registry/"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert "/registry/pods/store/p" in keys and "/registry/namespaces/store" in keys
    # resourceVersion is etcd's revision; a write on a stale one is a 409 Conflict
    stale = dict(made)
    stale["metadata"] = {**made["metadata"], "labels": {"a": "1"}}
    code, first = request(plane, "PUT", "/api/v1/namespaces/store/pods/p", json.dumps(stale))
    assert code == 200 and int(first["metadata"]["resourceVersion"]) > int(
        made["metadata"]["resourceVersion"])
    code, body = request(plane, "PUT", "/api/v1/namespaces/store/pods/p", json.dumps(stale))
    assert code == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_a_watch_sees_changes_in_order(plane):
    request(plane, "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": "w"}}))
    code, listed = request(plane, "GET", "/api/v1/namespaces/w/configmaps")
    since = listed["metadata"]["resourceVersion"]
    for name in ("a", "b"):
        request(plane, "POST", "/api/v1/namespaces/w/configmaps",
                json.dumps({"metadata": {"name": name}}))
    request(plane, "PATCH", "/api/v1/namespaces/w/configmaps/a",
            json.dumps({"data": {"k": "v"}}), content_type="application/merge-patch+json")
    request(plane, "DELETE", "/api/v1/namespaces/w/configmaps/b")
    req = urllib.request.Request(f"{plane.server}/api/v1/namespaces/w/configmaps?watch=1&"
                                 f"resourceVersion={since}&timeoutSeconds=2")
    with urllib.request.urlopen(req, context=admin_context(plane.pki), timeout=10) as r:
        events = [json.loads(line) for line in r.read().splitlines() if line.strip()]
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 4


def test_up_serves_kubectl_and_a_killed_api_server_comes_back_with_every_object(
        require, tmp_path):
    require("vxlan", "bridge", "veth")
    binaries = kubectl_binaries()
    if not binaries:
        pytest.skip("no kubectl on this machine")
    before, name = Footprint(), unique_name()
    up = run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "vxlan", "--no-cli",
                     "--name", name, check=True)
    try:
        assert "API server https://127.0.0.1:" in up.stdout and f"testbed-{name}" in up.stdout
        config = tmp_path / "config"
        config.write_text(run_testbed("kubeconfig", "--name", name, check=True).stdout)
        assert f"current-context: testbed-{name}" in config.read_text()

        def kc(*args):
            return subprocess.run([binaries[0], "--kubeconfig", str(config), *args],
                                  capture_output=True, text=True, timeout=60)
        made = kc("create", "configmap", "kept", "--from-literal=a=1")
        assert made.returncode == 0, made.stderr
        state = RunState.load(run_dir_for(name))
        server = next(p for p in state.owned.pids if p.what == f"apiserver@{name}")
        daemons = run_testbed("daemons", "--name", name, check=True).stdout
        assert f"apiserver@{name}" in daemons and f"etcd@{name}" in daemons
        os.kill(server.pid, signal.SIGKILL)
        assert wait_until(lambda: any(p.what == f"apiserver@{name}" and p.pid != server.pid
                                      for p in RunState.load(run_dir_for(name)).owned.pids),
                          15, 0.1), "the supervisor did not start the API server again"
        assert wait_until(lambda: kc("get", "configmap", "kept").returncode == 0, 15, 0.2)
        got = kc("get", "configmap", "kept", "-o", "jsonpath={.data.a}")
        assert got.stdout == "1"
        events = RunState.load(run_dir_for(name)).events
        assert any(e.reason == "Restarted" and name in e.object for e in events)
        pids = RunState.load(run_dir_for(name)).owned.pids
    finally:
        down = run_testbed("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert Footprint().leftovers(before, pids + [server]) == []
