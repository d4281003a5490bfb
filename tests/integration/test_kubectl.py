"""A cluster driven with kubectl alone, as a user drives a kind cluster: what kubectl prints,
and what the nodes then hold (a sandbox with the pod's address, a Service's rules answering,
a Deployment's pods), with kubectl 1.37 and the machine's older one."""
import ipaddress
import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from testbed.host import netns
from testbed.host.waiting import wait_until
from testbed.model.state import RunState, run_dir_for

from .conftest import TOPO, Footprint, in_pod, run_testbed, unique_name

NEW = os.path.join(os.path.dirname(sys.executable), "kubectl")
OLD = "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, caps):
    missing = [f for f in ("vxlan", "bridge", "veth") if not caps.get(f)]
    if missing or not os.access(NEW, os.X_OK):
        pytest.skip(f"needs {', '.join(missing) or 'kubectl in the venv'}")
    before, name = Footprint(), unique_name()
    run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "vxlan", "--no-cli",
                "--name", name, check=True)
    config = tmp_path_factory.mktemp("kube") / "config"
    try:
        config.write_text(run_testbed("kubeconfig", "--name", name, check=True).stdout)
        yield name, str(config)
        pids = RunState.load(run_dir_for(name)).owned.pids
    finally:
        down = run_testbed("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert Footprint().leftovers(before, pids) == []


def kubectl(cluster, *args, binary=NEW, check=True, timeout=60):
    proc = subprocess.run([binary, "--kubeconfig", cluster[1], *args], capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc


ACCESS_LINE = r'127\.0\.0\.1 - - \[.*\] "GET / HTTP/1\.1" 200 '  # nginx's, from its loopback


def background(cluster, binary, *args):
    """A kubectl that runs until it is ended (port-forward, logs -f), killed after 60 s so
    that a test waiting on its output fails rather than hangs."""
    proc = subprocess.Popen([binary, "--kubeconfig", cluster[1], *args],
                            stdout=subprocess.PIPE, text=True)
    threading.Timer(60, proc.kill).start()
    return proc


def state(cluster):
    return RunState.load(run_dir_for(cluster[0]))


def rows(out):
    return [line.split() for line in out.strip().splitlines()[1:]]


def test_nodes_and_the_clusters_own_pods_are_in_the_api(cluster):
    nodes = rows(kubectl(cluster, "get", "nodes", "-o", "wide").stdout)
    assert [(r[0], r[1], r[5]) for r in nodes] == [("node1", "Ready", "192.168.1.11"),
                                                   ("node2", "Ready", "192.168.1.12")]
    cidr = kubectl(cluster, "get", "node", "node2", "-o", "jsonpath={.spec.podCIDR}").stdout
    assert cidr == state(cluster).nodes["node2"].lease
    wait_until(lambda: "node2-pod1" in kubectl(cluster, "get", "pods").stdout, 10, 0.2)
    pods = {r[0]: r for r in rows(kubectl(cluster, "get", "pods", "-o", "wide").stdout)}
    for name in ("node1-pod1", "node2-pod1"):
        record = state(cluster).pods[f"default/{name}"]
        assert pods[name][1:3] == ["1/1", "Running"]
        assert (pods[name][5], pods[name][6]) == (record.ip, record.node)


@pytest.mark.parametrize("binary", [NEW, OLD], ids=["kubectl-1.37", "kubectl-old"])
def test_a_pod_run_exposed_labelled_and_deleted_with_kubectl(cluster, binary):
    if not os.access(binary, os.X_OK):
        pytest.skip(f"no {binary} on this machine")
    tag = "new" if binary == NEW else "old"
    pod, svc = f"web-{tag}", f"websvc-{tag}"

    def k(*args, **kw):
        return kubectl(cluster, *args, binary=binary, **kw)
    assert k("run", pod, "--image=nginx", "--port=80", f"--labels=app={pod}").stdout.strip() \
        == f"pod/{pod} created"
    assert k("wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=30s").returncode == 0
    record = state(cluster).pods[f"default/{pod}"]
    # port-forward from the host into the pod: nginx sees the request come from the pod's own
    # loopback (the kubelet connects there), and `logs -f` shows it as it is written
    follow = background(cluster, binary, "logs", "-f", pod)
    attached = background(cluster, binary, "attach", pod)  # what it writes from now on
    forward = background(cluster, binary, "port-forward", f"pod/{pod}", ":80")
    try:
        local = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 80$",
                         forward.stdout.readline().strip())
        assert local, "port-forward did not say where it listens"
        url = f"http://127.0.0.1:{local.group(1)}/"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert f"<p>{pod}</p>" in r.read().decode()
        assert follow.stdout.readline().startswith(f"http for {pod} on pid")
        assert re.match(ACCESS_LINE, follow.stdout.readline())
        # attach shows only what comes after it connected: ask until a request shows
        for _ in range(20):
            urllib.request.urlopen(url, timeout=10).close()
            if select.select([attached.stdout], [], [], 0.5)[0]:
                break
        assert re.match(ACCESS_LINE, attached.stdout.readline())
    finally:
        for proc in (forward, follow, attached):
            proc.terminate()
            proc.wait(timeout=10)
    ip = k("get", "pod", pod, "-o", "jsonpath={.status.podIP}").stdout
    assert ip == record.ip  # the address the CNI gave its sandbox
    assert f"inet {ip}/" in netns.run(netns.in_pod(record.netns, ["ip", "-4", "addr"]))
    # what happened to it, as the scheduler and the kubelet report it
    assert wait_until(lambda: "Started" in k("get", "events", "--field-selector",
                                             f"involvedObject.name={pod}").stdout, 10, 0.2)
    events = k("describe", "pod", pod).stdout.split("Events:", 1)[1]
    assert re.search(rf"Normal\s+Scheduled\s+\S+\s+default-scheduler\s+Successfully "
                     rf"assigned default/{pod} to {record.node}", events)
    assert re.search(rf"Normal\s+Started\s+\S+\s+kubelet\s+.*IP {re.escape(ip)}", events)
    assert k("expose", "pod", pod, "--port=8080", "--target-port=80",
             f"--name={svc}").stdout.strip() == f"service/{svc} exposed"
    cluster_ip = k("get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}").stdout
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network("10.96.0.0/12")
    # the nodes' kube-proxy rules send a pod's connection to the Service to the pod
    assert wait_until(lambda: pod in subprocess.run(
        in_pod(state(cluster), "node2-pod1", ["wget", "-qO-", "-t", "1", "-T", "2",
                                              f"http://{cluster_ip}:8080/"]),
        capture_output=True, text=True).stdout, 15, 0.3)
    # the endpoints controller writes the object on its next pass: until then it is NotFound
    assert wait_until(lambda: f"{ip}:80" in k("get", "endpoints", svc, check=False).stdout, 10,
                      0.2)
    slices = json.loads(k("get", "endpointslices", "-l",
                          f"kubernetes.io/service-name={svc}", "-o", "json").stdout)["items"]
    assert [e["addresses"] for s in slices for e in s["endpoints"]] == [[ip]]
    described = k("describe", "svc", svc).stdout
    assert f"IP:                {cluster_ip}" in described and f"{ip}:80" in described
    assert k("label", "pod", pod, "tier=front").stdout.strip() == f"pod/{pod} labeled"
    assert wait_until(lambda: state(cluster).pods[f"default/{pod}"].labels.get("tier") ==
                      "front", 10, 0.2)
    assert k("delete", "svc", svc).returncode == 0
    assert k("delete", "pod", pod).returncode == 0
    assert wait_until(lambda: record.netns not in netns.netns_list(), 15, 0.2)
    assert f"default/{pod}" not in state(cluster).pods


def test_a_deployment_scaled_rolled_out_and_healed(cluster):
    assert kubectl(cluster, "create", "deployment", "shop", "--image=nginx", "--port=80",
                   "--replicas=2").stdout.strip() == "deployment.apps/shop created"
    out = kubectl(cluster, "rollout", "status", "deployment/shop", "--timeout=30s").stdout
    assert 'deployment "shop" successfully rolled out' in out

    def running():
        return {k.split("/", 1)[1] for k in state(cluster).pods if k.startswith("default/shop-")}
    assert len(running()) == 2
    assert kubectl(cluster, "scale", "deployment", "shop", "--replicas=3").stdout.strip() == \
        "deployment.apps/shop scaled"
    assert kubectl(cluster, "wait", "--for=jsonpath={.status.readyReplicas}=3",
                   "deployment/shop", "--timeout=30s").returncode == 0
    listed = set(kubectl(cluster, "get", "pods", "-l", "app=shop", "-o",
                         "jsonpath={.items[*].metadata.name}").stdout.split())
    assert listed == running() and len(listed) == 3
    victim = sorted(listed)[0]
    kubectl(cluster, "delete", "pod", victim)
    assert wait_until(lambda: len(running()) == 3 and victim not in running(), 20, 0.3)
    table = rows(kubectl(cluster, "get", "deploy", "shop").stdout)
    assert table[0][:4] == ["shop", "3/3", "3", "3"]
    kubectl(cluster, "delete", "deployment", "shop")
    assert wait_until(lambda: not running(), 20, 0.3)


TWO_CONTAINERS = """apiVersion: apps/v1
kind: Deployment
metadata: {name: twin}
spec:
  selector: {matchLabels: {app: twin}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1}}
  template:
    metadata: {labels: {app: twin}}
    spec:
      containers:
      - {name: web, image: nginx, env: [{name: A, value: "1"}, {name: B, value: "2"}]}
      - {name: side, image: busybox, command: [sleep, "3600"]}
"""
ONE_CONTAINER = TWO_CONTAINERS.replace(', {name: B, value: "2"}', "").replace(
    "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1}}", "strategy: {type: Recreate}"
).split("      - {name: side")[0]


@pytest.mark.parametrize("binary", [NEW, OLD], ids=["kubectl-1.37", "kubectl-old"])
def test_explain_and_a_reapply_patch_by_the_served_schemas(cluster, binary, tmp_path):
    out = kubectl(cluster, "explain", "pods.spec.containers.ports", binary=binary).stdout
    assert "FIELD: ports <[]ContainerPort>" in out
    assert re.search(r"containerPort\s+<integer> -required-", out)
    out = kubectl(cluster, "explain", "deploy.spec.strategy", "--recursive",
                  binary=binary).stdout
    assert re.search(r"rollingUpdate\s+<RollingUpdateDeployment>\n\s+maxSurge", out)
    manifest = tmp_path / "twin.yaml"
    manifest.write_text(TWO_CONTAINERS)
    kubectl(cluster, "apply", "-f", str(manifest), binary=binary)
    manifest.write_text(ONE_CONTAINER)
    # kubectl computes this patch from the served schemas: containers and env merged by name
    # (the dropped ones deleted), the strategy's rollingUpdate gone with it (retainKeys)
    proc = kubectl(cluster, "apply", "-f", str(manifest), "-v=6", binary=binary)
    assert "deployment.apps/twin configured" in proc.stdout
    assert "does not support strategic merge patch" not in proc.stderr
    spec = json.loads(kubectl(cluster, "get", "deploy", "twin", "-o", "json").stdout)["spec"]
    assert spec["strategy"] == {"type": "Recreate"}
    assert [(c["name"], c.get("env")) for c in spec["template"]["spec"]["containers"]] == \
        [("web", [{"name": "A", "value": "1"}])]
    kubectl(cluster, "delete", "deployment", "twin")


def test_exec_with_a_terminal_logs_and_a_watch(cluster):
    out = kubectl(cluster, "exec", "node1-pod1", "--", "sh", "-c", "echo out; echo err >&2; "
                  "exit 3", check=False)
    assert (out.returncode, out.stdout, out.stderr.splitlines()[0]) == (3, "out\n", "err")
    # -it under a pseudo-terminal: nslookup of a Service through the cluster's DNS
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(NEW, [NEW, "--kubeconfig", cluster[1], "exec", "-it", "node1-pod1", "--",
                       "sh", "-c", "tty; nslookup kubernetes.default.svc.cluster.local"])
    seen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(fd)
    assert os.waitpid(pid, 0)[1] == 0
    text = seen.decode(errors="replace")
    assert "/dev/pts/" in text and "10.96.0.1" in text
    watch = subprocess.Popen([NEW, "--kubeconfig", cluster[1], "get", "pods", "-w",
                              "--output-watch-events"], stdout=subprocess.PIPE, text=True)
    threading.Timer(30, watch.kill).start()  # a watch that never sees it fails, not hangs
    try:
        kubectl(cluster, "run", "watched", "--image=nginx")
        lines = []
        while not any("watched" in line and "Running" in line for line in lines):
            line = watch.stdout.readline()
            assert line, f"the watch ended without the pod running: {lines}"
            lines.append(line)
        assert any(line.split()[:2] == ["ADDED", "watched"] for line in lines)
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    kubectl(cluster, "wait", "--for=condition=Ready", "pod/watched", "--timeout=30s")
    logged = kubectl(cluster, "logs", "watched", "--tail=1").stdout
    assert "watched" in logged
    kubectl(cluster, "delete", "pod", "watched")


SSA = """\
apiVersion: v1
kind: Service
metadata: {name: applied, labels: {rev: "REV"}}
spec:
  selector: {app: applied}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def test_server_side_apply_creates_then_merges_and_the_nodes_follow(cluster, tmp_path):
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SSA.replace("REV", "1"))
    out = kubectl(cluster, "apply", "--server-side", "-f", str(manifest)).stdout
    assert out.strip() == "service/applied serverside-applied"
    ip = kubectl(cluster, "get", "svc", "applied", "-o", "jsonpath={.spec.clusterIP}").stdout
    node1 = state(cluster).nodes["node1"]
    # kube-proxy's rule for it: without endpoints, the filter table's REJECT
    assert wait_until(lambda: f"-d {ip}/32" in netns.run(netns.in_node(
        node1.pid, ["iptables-save", "-t", "filter"])), 10, 0.2)
    manifest.write_text(SSA.replace("REV", "2"))
    kubectl(cluster, "apply", "--server-side", "-f", str(manifest))
    svc = json.loads(kubectl(cluster, "get", "svc", "applied", "-o", "json",
                             "--show-managed-fields").stdout)
    assert svc["metadata"]["labels"] == {"rev": "2"} and svc["spec"]["clusterIP"] == ip
    assert [(m["manager"], m["operation"]) for m in svc["metadata"]["managedFields"]] == \
        [("kubectl", "Apply")]
    assert "f:selector" in svc["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
    # a field another manager has set since is a conflict; forced, the apply takes it
    kubectl(cluster, "label", "svc", "applied", "rev=9", "--overwrite")
    manifest.write_text(SSA.replace("REV", "3"))
    refused = kubectl(cluster, "apply", "--server-side", "-f", str(manifest), check=False)
    assert refused.returncode == 1 and "Apply failed with 1 conflict: conflict with " \
        '"kubectl-label" using v1: .metadata.labels.rev' in refused.stderr, refused.stderr
    kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    # what this manager applied before and leaves out now leaves the object
    manifest.write_text(SSA.replace("REV", "3").replace("port: 80, ", "port: 80, protocol: "
                                                        "TCP, ").replace("name: http, ", ""))
    kubectl(cluster, "apply", "--server-side", "-f", str(manifest))
    port = json.loads(kubectl(cluster, "get", "svc", "applied", "-o", "json").stdout)[
        "spec"]["ports"][0]
    assert "name" not in port and (port["port"], port["targetPort"]) == (80, 8080)
    assert kubectl(cluster, "get", "svc", "applied", "-o", "jsonpath={.metadata.labels.rev}"
                   ).stdout == "3"
    kubectl(cluster, "delete", "svc", "applied")


STRAY = """apiVersion: v1
kind: Pod
metadata: {name: stray}
spec:
  nodeName: nowhere
  containers: [{name: main, image: busybox}]
"""


def test_testbed_get_and_kubectl_read_one_truth(cluster, tmp_path):
    def testbed_get(*args):
        return run_testbed("get", "pods", *args, "--name", cluster[0], check=True).stdout

    def status_of(out, name):
        return next((row[2] for row in rows(out) if row[0] == name), None)
    manifest = tmp_path / "stray.yaml"
    manifest.write_text(STRAY)
    kubectl(cluster, "apply", "-f", str(manifest))
    # a pod no node runs: only the API has it, and testbed lists it as kubectl does
    assert wait_until(lambda: status_of(testbed_get(), "stray") == "Pending", 10, 0.2)
    wide = next(r for r in rows(testbed_get("-o", "wide")) if r[0] == "stray")
    assert wide[-3:] == ["<none>", "nowhere", "<none>"]  # no IP, its node, no sandbox
    described = run_testbed("describe", "pod", "stray", "--name", cluster[0], check=True).stdout
    assert re.search(r"Status:\s+Pending", described) and "no node runs this pod" in described
    assert re.search(r"PodScheduled\s+False\s+\w+: .*nowhere", described), described
    kubectl(cluster, "run", "victim", "--image=busybox", "--", "sleep", "3600")
    kubectl(cluster, "wait", "--for=condition=Ready", "pod/victim", "--timeout=30s")
    container = state(cluster).pods["default/victim"].containers["victim"]
    os.kill(container.pid, 9)  # the container's process dies: the kubelet reports it
    assert wait_until(lambda: status_of(testbed_get(), "victim") == "Error", 10, 0.2)
    assert status_of(kubectl(cluster, "get", "pods").stdout, "victim") == "Error"
    assert "0/1" in kubectl(cluster, "get", "pod", "victim").stdout
    kubectl(cluster, "delete", "pod", "stray", "victim", "--wait=false")


SA = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_a_pods_service_account_token_and_kubectl_create_token_authenticate(cluster):
    """From a pod, as its client library would: the projected token and CA, through
    kubernetes.default (10.96.0.1, whose endpoint is the API server on the first node)."""
    out = kubectl(cluster, "exec", "node2-pod1", "--", "sh", "-c",
                  f'curl -s --cacert {SA}/ca.crt -H "Authorization: Bearer $(cat {SA}/token)" '
                  "https://kubernetes.default/api/v1/namespaces/default/pods/node2-pod1").stdout
    assert json.loads(out)["spec"]["nodeName"] == "node2"
    assert kubectl(cluster, "exec", "node2-pod1", "--", "cat", f"{SA}/namespace").stdout == \
        "default"
    anonymous = kubectl(cluster, "exec", "node2-pod1", "--", "curl", "-s", "-o", "/dev/null",
                        "-w", "%{http_code}", "--cacert", f"{SA}/ca.crt",
                        "https://kubernetes.default/api").stdout
    assert anonymous == "401"
    assert not os.listdir("/run/secrets/kubernetes.io/serviceaccount")  # the pod's own mount
    assert "default" in kubectl(cluster, "get", "serviceaccounts").stdout
    token = kubectl(cluster, "create", "token", "default", "--duration=15m").stdout.strip()
    record = state(cluster).control_plane
    ca = os.path.join(record["directory"], "pki", "ca.crt")

    def as_token(value, *args):
        return subprocess.run([NEW, "--kubeconfig", "/dev/null", "--server", record["server"],
                               "--certificate-authority", ca, "--token", value, *args],
                              capture_output=True, text=True, timeout=30)
    listed = as_token(token, "get", "pods", "-o", "name")
    assert listed.returncode == 0 and "pod/node2-pod1" in listed.stdout.split()
    refused = as_token(token[:-4] + "AAAA", "get", "pods")
    assert refused.returncode == 1 and "Unauthorized" in refused.stderr
    # a token is good while what it names exists: its account, the pod it is bound to
    kubectl(cluster, "create", "serviceaccount", "bot")
    bot = kubectl(cluster, "create", "token", "bot").stdout.strip()
    kubectl(cluster, "run", "holder", "--image=busybox", "--", "sleep", "3600")
    kubectl(cluster, "wait", "--for=condition=Ready", "pod/holder", "--timeout=30s")
    held = kubectl(cluster, "exec", "holder", "--", "cat", f"{SA}/token").stdout.strip()
    assert as_token(bot, "get", "ns").returncode == 0
    assert as_token(held, "get", "ns").returncode == 0
    kubectl(cluster, "delete", "serviceaccount", "bot")
    kubectl(cluster, "delete", "pod", "holder")
    for gone in (bot, held):
        refused = as_token(gone, "get", "ns")
        assert refused.returncode == 1 and "Unauthorized" in refused.stderr


def test_the_python_client_watches_a_deployment_scale_in_order(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(cluster[1]))
    assert {n.metadata.name for n in api.list_node().items} == {"node1", "node2"}
    kubectl(cluster, "create", "deployment", "scaled", "--image=nginx", "--replicas=0")
    events = []

    def watch():
        stream = kubernetes.watch.Watch().stream(
            api.list_namespaced_pod, "default", label_selector="app=scaled",
            timeout_seconds=40)
        for event in stream:
            events.append((event["type"], event["object"].metadata.name,
                           int(event["object"].metadata.resource_version),
                           event["object"].status.phase))
            if [e[0] for e in events].count("DELETED") == 2:
                return
    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(1)
    kubectl(cluster, "scale", "deployment", "scaled", "--replicas=3")
    assert wait_until(lambda: {e[1] for e in events if e[3] == "Running"}.__len__() == 3,
                      30, 0.2), events
    kubectl(cluster, "scale", "deployment", "scaled", "--replicas=1")
    watcher.join(timeout=40)
    versions = [e[2] for e in events]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    added = [e[1] for e in events if e[0] == "ADDED"]
    deleted = [e[1] for e in events if e[0] == "DELETED"]
    assert len(added) == 3 and len(deleted) == 2 and set(deleted) < set(added)
    left = {p.metadata.name for p in api.list_namespaced_pod(
        "default", label_selector="app=scaled").items}
    assert left == set(added) - set(deleted)
    assert {k.split("/", 1)[1] for k in state(cluster).pods
            if k.startswith("default/scaled-")} == left
    kubectl(cluster, "delete", "deployment", "scaled")


POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: clients-only, namespace: default}
spec:
  podSelector: {matchLabels: {app: guarded}}
  ingress:
  - from:
    - podSelector: {matchLabels: {role: client}}
"""


def test_a_label_set_with_kubectl_changes_what_a_policy_lets_through(require, tmp_path):
    """bgp enforces NetworkPolicy, as Calico does: a policy applied with kubectl, then a
    client pod labelled with kubectl, opens the way."""
    require("bridge", "veth")
    before, name = Footprint(), unique_name()
    run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "bgp", "--no-cli",
                "--name", name, check=True)
    try:
        config = tmp_path / "config"
        config.write_text(run_testbed("kubeconfig", "--name", name, check=True).stdout)
        c = (name, str(config))
        (tmp_path / "policy.yaml").write_text(POLICY)
        assert kubectl(c, "apply", "-f", str(tmp_path / "policy.yaml")).stdout.strip() == \
            "networkpolicy.networking.k8s.io/clients-only created"
        kubectl(c, "run", "guarded", "--image=nginx", "--labels=app=guarded")
        kubectl(c, "wait", "--for=condition=Ready", "pod/guarded", "--timeout=30s")
        ip = kubectl(c, "get", "pod", "guarded", "-o", "jsonpath={.status.podIP}").stdout

        def reaches():
            return "guarded" in subprocess.run(
                in_pod(state(c), "node2-pod1", ["wget", "-qO-", "-t", "1", "-T", "1",
                                                f"http://{ip}/"]),
                capture_output=True, text=True).stdout
        assert wait_until(lambda: "default/clients-only" in state(c).policies, 10, 0.2)
        assert not reaches()
        # an annotation is not a selector's business: the way stays closed
        assert kubectl(c, "annotate", "pod", "node2-pod1", "role=client").stdout.strip() == \
            "pod/node2-pod1 annotated"
        assert kubectl(c, "get", "pod", "node2-pod1", "-o",
                       "jsonpath={.metadata.annotations.role}").stdout == "client"
        time.sleep(1)
        assert not reaches()
        kubectl(c, "label", "pod", "node2-pod1", "role=client")
        assert wait_until(reaches, 15, 0.5)
        kubectl(c, "label", "pod", "node2-pod1", "role-")
        assert wait_until(lambda: not reaches(), 15, 0.5)
        kubectl(c, "delete", "networkpolicy", "clients-only")
        assert wait_until(reaches, 15, 0.5)
        pids = RunState.load(run_dir_for(name)).owned.pids
    finally:
        down = run_testbed("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert Footprint().leftovers(before, pids) == []
