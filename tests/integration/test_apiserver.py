"""The API server on a real etcd, reached as a user reaches it: kubectl with the kubeconfig
it writes, raw HTTPS with and without the admin's certificate, etcdctl on the store."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from testbed.apiserver import controlplane
from testbed.apiserver.controlplane import ControlPlane, admin_context
from testbed.apiserver.etcd import etcd_binary
from testbed.errors import TestbedError
from testbed.host.waiting import wait_until
from testbed.model.state import RunState, run_dir_for

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


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok"},
       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def pod(**changes):
    out = json.loads(json.dumps(POD))
    for path, value in changes.items():
        where = out
        keys = path.split("__")
        for k in keys[:-1]:
            where = where[k]
        where[keys[-1]] = value
    return json.dumps(out)


NS = "/api/v1/namespaces/bad"
BAD_REQUESTS = [  # (what, method, path, body, content type, code, reason)
    ("malformed JSON", "POST", f"{NS}/pods", "{", None, 400, "BadRequest"),
    ("malformed YAML", "POST", f"{NS}/pods", "a: [", "application/yaml", 400, "BadRequest"),
    ("an empty body", "POST", f"{NS}/pods", "", None, 400, "BadRequest"),
    ("a body over 3 MiB", "POST", f"{NS}/configmaps",
     json.dumps({"metadata": {"name": "big"}, "data": {"a": "x" * (3 * 1024 * 1024)}}), None,
     413, "RequestEntityTooLarge"),
    ("an unknown field, Strict", "POST", f"{NS}/pods?fieldValidation=Strict",
     pod(spec__x=1), None, 400, "BadRequest"),
    ("an unknown nested field, Strict", "POST", f"{NS}/pods?fieldValidation=Strict",
     pod(spec__containers=[{"name": "c", "imagee": "x"}]), None, 400, "BadRequest"),
    ("a string where a number goes, Ignore", "POST", f"{NS}/services?fieldValidation=Ignore",
     json.dumps({"metadata": {"name": "typed"}, "spec": {"ports": [{"port": "80"}]}}), None,
     400, "BadRequest"),
    ("a bool as a container's name", "POST", f"{NS}/pods",
     pod(spec__containers=[{"name": True, "image": "x"}]), None, 400, "BadRequest"),
    ("a fieldValidation that is none", "POST", f"{NS}/pods?fieldValidation=Loose", pod(),
     None, 400, "BadRequest"),
    ("a name with capitals", "POST", f"{NS}/pods", pod(metadata__name="Bad"), None, 422,
     "Invalid"),
    ("a name with an underscore", "POST", f"{NS}/pods", pod(metadata__name="a_b"), None, 422,
     "Invalid"),
    ("a name too long", "POST", f"{NS}/pods", pod(metadata__name="a" * 254), None, 422,
     "Invalid"),
    ("a namespace name with a dot", "POST", "/api/v1/namespaces",
     json.dumps({"metadata": {"name": "a.b"}}), None, 422, "Invalid"),
    ("a Service name starting with a digit", "POST", f"{NS}/services",
     json.dumps({"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}}), None, 422,
     "Invalid"),
    ("a wrong apiVersion", "POST", f"{NS}/pods", pod(apiVersion="v2"), None, 400,
     "BadRequest"),
    ("a wrong kind", "POST", f"{NS}/pods", pod(kind="Service"), None, 400, "BadRequest"),
    ("a body that is no object", "POST", f"{NS}/pods", "[1, 2]", None, 400, "BadRequest"),
    ("another namespace in the body", "POST", f"{NS}/pods", pod(metadata__namespace="other"),
     None, 400, "BadRequest"),
    ("a namespace that does not exist", "POST", "/api/v1/namespaces/nowhere/pods", pod(),
     None, 404, "NotFound"),
    ("a pod without containers", "POST", f"{NS}/pods", pod(spec__containers=[]), None, 422,
     "Invalid"),
    ("a container without an image", "POST", f"{NS}/pods",
     pod(spec__containers=[{"name": "c"}]), None, 422, "Invalid"),
    ("a port out of range", "POST", f"{NS}/services", json.dumps(
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000}]}}), None, 422,
     "Invalid"),
    ("a nodePort out of range", "POST", f"{NS}/services", json.dumps(
        {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [
            {"port": 80, "nodePort": 80}]}}), None, 422, "Invalid"),
    ("a clusterIP outside the range", "POST", f"{NS}/services", json.dumps(
        {"metadata": {"name": "s"}, "spec": {"clusterIP": "192.0.2.1", "ports": [
            {"port": 80}]}}), None, 422, "Invalid"),
    ("an object that exists", "POST", f"{NS}/pods", pod(metadata__name="there"), None, 409,
     "AlreadyExists"),
    ("a stale resourceVersion", "PUT", f"{NS}/pods/there",
     pod(metadata__name="there", metadata__resourceVersion="1"), None, 409, "Conflict"),
    ("a name unlike the URL's", "PUT", f"{NS}/pods/there", pod(metadata__name="other"), None,
     400, "BadRequest"),
    ("an update of what is not there", "PUT", f"{NS}/pods/missing",
     pod(metadata__name="missing"), None, 404, "NotFound"),
    ("a patch of an immutable field", "PATCH", f"{NS}/pods/there",
     json.dumps({"spec": {"nodeName": "elsewhere"}}), "application/merge-patch+json", 422,
     "Invalid"),
    ("a patch of a Service's clusterIP", "PATCH", f"{NS}/services/kept",
     json.dumps({"spec": {"clusterIP": "10.96.0.99"}}), "application/merge-patch+json", 422,
     "Invalid"),
    ("a patch type that is none", "PATCH", f"{NS}/pods/there", "{}", "text/plain", 415,
     "UnsupportedMediaType"),
    ("a JSON patch with no such op", "PATCH", f"{NS}/pods/there",
     json.dumps([{"op": "twist", "path": "/x"}]), "application/json-patch+json", 422,
     "Invalid"),
    ("a JSON patch whose test fails", "PATCH", f"{NS}/pods/there",
     json.dumps([{"op": "test", "path": "/metadata/name", "value": "no"}]),
     "application/json-patch+json", 422, "Invalid"),
    ("a merge patch that is no JSON", "PATCH", f"{NS}/pods/there", "{",
     "application/merge-patch+json", 400, "BadRequest"),
    ("a body type that is none", "POST", f"{NS}/pods", pod(), "text/plain", 415,
     "UnsupportedMediaType"),
    ("protobuf that is not", "POST", f"{NS}/pods", "k8s\x00\x0a\x05",
     "application/vnd.kubernetes.protobuf", 400, "BadRequest"),
    ("an unknown resource", "GET", "/api/v1/widgets", None, None, 404, "NotFound"),
    ("an unknown group", "GET", "/apis/nothing.example.com/v1", None, None, 404, "NotFound"),
    ("an unknown subresource", "GET", f"{NS}/pods/there/sideways", None, None, 404,
     "NotFound"),
    ("a method a collection has not", "PUT", f"{NS}/pods", pod(), None, 405,
     "MethodNotAllowed"),
    ("a delete of what is not there", "DELETE", f"{NS}/pods/missing", None, None, 404,
     "NotFound"),
    ("a negative page size", "GET", f"{NS}/pods?limit=-1", None, None, 400, "BadRequest"),
    ("a page size that is no number", "GET", f"{NS}/pods?limit=many", None, None, 400,
     "BadRequest"),
    ("a continue token that is none", "GET", f"{NS}/pods?limit=1&continue=garbage", None,
     None, 400, "BadRequest"),
    ("a label selector cut short", "GET", f"{NS}/pods?labelSelector=a%20in%20(b", None, None,
     400, "BadRequest"),
    ("a field selector on an unknown field", "GET", f"{NS}/pods?fieldSelector=spec.x%3Dy",
     None, None, 400, "BadRequest"),
    ("a binding without a target", "POST", f"{NS}/pods/there/binding",
     json.dumps({"metadata": {"name": "there"}}), None, 422, "Invalid"),
    ("a scale to fewer than none", "PATCH", "/apis/apps/v1/namespaces/bad/deployments/d/scale",
     json.dumps({"spec": {"replicas": -1}}), "application/merge-patch+json", 422, "Invalid"),
    ("the log of a pod that is not there", "GET", f"{NS}/pods/missing/log", None, None, 404,
     "NotFound"),
    ("an exec that is no upgrade", "POST", f"{NS}/pods/there/exec?command=true", None, None,
     400, "BadRequest"),
]


@pytest.fixture(scope="module")
def bad_ns(plane):
    request(plane, "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": "bad"}}))
    assert request(plane, "POST", f"{NS}/pods", pod(metadata__name="there"))[0] == 201
    assert request(plane, "POST", f"{NS}/services", json.dumps(
        {"metadata": {"name": "kept"}, "spec": {"ports": [{"port": 80}]}}))[0] == 201
    assert request(plane, "POST", "/apis/apps/v1/namespaces/bad/deployments", json.dumps({
        "metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                                            "template": {"metadata": {"labels": {"a": "b"}},
                                                         "spec": json.loads(pod())["spec"]}}}
    ))[0] == 201
    return NS


@pytest.mark.parametrize("what, method, path, body, content_type, code, reason", BAD_REQUESTS,
                         ids=[c[0] for c in BAD_REQUESTS])
def test_a_bad_request_gets_the_api_servers_status(plane, bad_ns, what, method, path, body,
                                                   content_type, code, reason):
    got, status = request(plane, method, path, body,
                          content_type=content_type or "application/json")
    assert (got, status.get("kind"), status.get("reason")) == (code, "Status", reason), status
    assert status["code"] == code and status["message"] and status["status"] == "Failure"
    assert request(plane, "GET", f"{NS}/pods/there")[0] == 200  # the server is still up


def test_a_huge_page_is_served_in_pages(plane, bad_ns):
    code, listed = request(plane, "GET", f"{NS}/pods?limit=100000000")
    assert code == 200 and [p["metadata"]["name"] for p in listed["items"]] == ["there"]


def test_a_port_taken_between_its_pick_and_the_bind_is_picked_again(monkeypatch):
    """A port found free can be taken before the daemon binds it (an outgoing connection may
    get it meanwhile): etcd and the API server each start again on other ports."""
    try:
        etcd_binary()
    except TestbedError as e:
        pytest.skip(str(e))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    # etcd's first client port, then the API server's first port (None: a port found free)
    picks = iter([busy, None, None, None, busy])
    real = controlplane.free_port

    def free_port():
        return next(picks, None) or real()

    monkeypatch.setattr(controlplane, "free_port", free_port)
    state = RunState.create(unique_name())
    plane = ControlPlane(state.name, state.subdir("control-plane"))
    try:
        plane.start(state)
        assert busy not in (plane.port, int(plane.etcd_endpoint.rsplit(":", 1)[1]))
        code, _doc = request(plane, "GET", "/api/v1/namespaces",
                             context=admin_context(plane.pki))
        assert code == 200
        assert [e.what for e in state.owned.pids] == [f"etcd@{state.name}",
                                                      f"apiserver@{state.name}"]
        for daemon in ("etcd", "apiserver"):  # each failed once on the taken port first
            with open(os.path.join(plane.directory, f"{daemon}.out")) as f:
                assert "address already in use" in f.read(), daemon
    finally:
        plane.stop(state)
        taken.close()
        assert state.owned.pids == []
        shutil.rmtree(state.dir)
