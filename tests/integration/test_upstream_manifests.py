"""Manifests as Kubernetes' own e2e suite writes them, applied unchanged; clusters side by side.

The NetworkPolicy e2e model (test/e2e/network/netpol/model.go): namespaces x, y, z, pods a, b, c
in each (label pod=<name>), one agnhost container per port and protocol running
`/agnhost serve-hostname --tcp|--udp --http=false --port N`, and a Service s-<ns>-<pod> per
pod. Pod names repeat across namespaces, as upstream's do.
"""
import json

import pytest

from testbed import REPO, manifests
from testbed.api import apply
from testbed.host import netns
from testbed.model.state import RunState, run_dir_for

from .conftest import TOPO, Footprint, run_testbed, unique_name
from .test_connectivity import full_matrix

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def model_pod(namespace, name, ports, protocols):
    """A pod as model.go's KubePod() and Container.Spec() make it, in YAML."""
    containers = []
    for port in ports:
        for proto in protocols:
            flag = "--tcp" if proto == "TCP" else "--udp"
            containers.append(f"""\
  - name: cont-{port}-{proto.lower()}
    image: {AGNHOST}
    imagePullPolicy: IfNotPresent
    command: ["/agnhost", "serve-hostname", "{flag}", "--http=false", "--port", "{port}"]
    securityContext: {{}}
    ports:
    - containerPort: {port}
      name: serve-{port}-{proto.lower()}
      protocol: {proto}
""")
    service_ports = "".join(f"""\
  - name: service-port-{proto.lower()}-{port}
    protocol: {proto}
    port: {port}
""" for port in ports for proto in protocols)
    return f"""\
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    pod: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
{"".join(containers)}---
apiVersion: v1
kind: Service
metadata:
  name: s-{namespace}-{name}
  namespace: {namespace}
spec:
  selector:
    pod: {name}
  ports:
{service_ports}"""


def model(namespaces, pods, ports=(80, 81), protocols=("TCP", "UDP")):
    text = "".join(f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
                   for ns in namespaces)
    return text + "".join(model_pod(ns, pod, ports, protocols)
                          for ns in namespaces for pod in pods)


# From one pod, ask every (address, port, protocol) for its hostname, as serve-hostname serves
# it raw over TCP (written, then closed) and UDP (one datagram back); prints one JSON map.
ASK_ALL = """\
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def ask(target):
    ip, port, proto = target
    try:
        if proto == "TCP":
            with socket.create_connection((ip, port), timeout=2) as s:
                return s.recv(100).decode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(b"hostname\\n", (ip, port))
            return s.recv(100).decode()
    except OSError as e:
        return f"error: {e}"
targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(16) as pool:
    print(json.dumps(list(pool.map(ask, targets))))
"""


def ask_all(sandbox, targets):
    out = netns.run(netns.in_pod(sandbox, ["python3", "-c", ASK_ALL, json.dumps(targets)]),
                    timeout=120)
    return json.loads(out)


def test_upstream_netpol_model_applies_unchanged_and_every_pod_answers(make_cluster, tmp_path):
    cluster = make_cluster("default.yaml", "vxlan")
    name = cluster.spec.name
    manifest = REPO / "docs" / "examples" / "netpol-model.yaml"  # as the docs show it
    assert manifest.read_text().endswith(model(("x", "y", "z"), ("a", "b", "c")))
    # as `testbed apply -f` has the cluster's owner do it (this test process owns it)
    result = apply.apply(cluster, manifests.load(str(manifest)))
    assert not any("agnhost" in w for w in result.warnings), result.warnings
    assert any("terminationGracePeriodSeconds: not implemented" in w for w in result.warnings)
    data = cluster.state
    model_pods = {k: r for k, r in data.pods.items() if r.namespace in ("x", "y", "z")}
    assert sorted(model_pods) == [f"{ns}/{p}" for ns in "xyz" for p in "abc"]
    # same names in three namespaces: three sandboxes and three addresses each
    assert len({r.netns for r in model_pods.values()}) == 9
    assert len({r.ip for r in model_pods.values()}) == 9
    targets = [(r.ip, port, proto) for r in model_pods.values()
               for port in (80, 81) for proto in ("TCP", "UDP")]
    expected = [r.name for r in model_pods.values() for _ in range(4)]
    for key, rec in model_pods.items():
        assert ask_all(rec.netns, targets) == expected, f"from {key}"

    # upstream's own probe, exactly as its prober runs it in a pod: through the Service's name
    for port, proto in ((80, "tcp"), (81, "udp")):
        probe = run_testbed("exec", "-n", "x", "a", "--name", name, "--", "/agnhost", "connect",
                            f"s-y-b.y.svc.cluster.local:{port}", "--timeout=1s",
                            f"--protocol={proto}")
        assert probe.returncode == 0, probe.stderr
    refused = run_testbed("exec", "-n", "x", "a", "--name", name, "--", "/agnhost", "connect",
                          f"{model_pods['y/b'].ip}:82", "--timeout=1s", "--protocol=tcp")
    assert refused.returncode == 1 and refused.stderr.strip() == "REFUSED"

    # a pod name in two namespaces: two addresses, two DNS records of each kind
    dig = ["dig", "+short"]
    for ns in ("x", "y"):
        ip = model_pods[f"{ns}/a"].ip
        pod_record = f"{ip.replace('.', '-')}.{ns}.pod.cluster.local"
        client = model_pods["z/c"].netns
        assert netns.run(netns.in_pod(client, dig + [pod_record])).strip() == ip
        svc_ip = data.services[f"{ns}/s-{ns}-a"].cluster_ip
        assert netns.run(netns.in_pod(client, dig + [f"s-{ns}-a.{ns}.svc.cluster.local"])) \
            .strip() == svc_ip

    # kubectl's habits: one namespace by default, -A for all, -o json in kubectl's shape
    table = run_testbed("get", "pods", "-n", "y", "--name", name, check=True).stdout
    assert table.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:3] for line in table.splitlines()[1:]] == \
        [["a", "4/4", "Running"], ["b", "4/4", "Running"], ["c", "4/4", "Running"]]
    everything = run_testbed("get", "pods", "-A", "--name", name, check=True).stdout
    assert sum(line.split()[1] == "a" for line in everything.splitlines()[1:]) == 3
    listed = json.loads(run_testbed("get", "pods", "-n", "x", "-o", "json", "--name", name,
                                    check=True).stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    item = listed["items"][0]
    assert item["metadata"] == {**item["metadata"], "name": "a", "namespace": "x",
                                "labels": {"pod": "a"}}
    assert item["spec"]["nodeName"] in cluster.nodes
    assert (item["status"]["podIP"], item["status"]["phase"]) == \
        (model_pods["x/a"].ip, "Running")
    logs = run_testbed("logs", "-n", "z", "b", "-c", "cont-81-udp", "--name", name, check=True)
    assert "Serving on port 81." in logs.stdout


SCTP_ONLY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-only-sctp-ingress-on-port-80
  namespace: x
spec:
  podSelector:
    matchLabels:
      pod: a
  policyTypes: [Ingress]
  ingress:
  - ports:
    - protocol: SCTP
      port: 80
"""


def test_a_policy_allowing_only_sctp_still_isolates_the_pod(make_cluster, tmp_path):
    """Upstream: "should properly isolate pods that are selected by a policy allowing SCTP,
    even if the plugin doesn't support SCTP" — TCP to x/a must be denied."""
    cluster = make_cluster("default.yaml", "bgp")  # Calico's mode enforces NetworkPolicy
    (tmp_path / "servers.yaml").write_text(model(("x", "y"), ("a", "b"), (81,), ("TCP",)))
    apply.apply(cluster, manifests.load(str(tmp_path / "servers.yaml")))
    (tmp_path / "policy.yaml").write_text(SCTP_ONLY)
    apply.apply(cluster, manifests.load(str(tmp_path / "policy.yaml")))
    pods = cluster.state.pods
    targets = [(pods[k].ip, 81, "TCP") for k in ("x/a", "x/b", "y/a", "y/b")]
    for client in ("x/b", "y/a", "y/b"):
        answers = ask_all(pods[client].netns, targets)
        assert answers[0].startswith("error"), f"{client} reached x/a over TCP: {answers}"
        assert answers[1:] == ["b", "a", "b"], (client, answers)
    node = cluster.nodes[pods["x/a"].node]
    ruleset = node.ns.run("nft", "list", "table", "ip", "calico")
    assert "sctp dport 80" in ruleset  # the SCTP rule itself is enforced, by protocol number
    check = run_testbed("policy", "check", "-n", "y", "a", "x/a", "81", "--name",
                        cluster.spec.name)
    assert check.returncode == 1 and "isolated by allow-only-sctp-ingress-on-port-80" in \
        check.stdout
    shown = json.loads(run_testbed("get", "netpol", "-n", "x", "-o", "json", "--name",
                                   cluster.spec.name, check=True).stdout)["items"][0]
    assert shown["spec"]["ingress"] == [{"ports": [{"protocol": "SCTP", "port": 80}]}]


def test_two_clusters_of_one_topology_run_side_by_side(require):
    require("vxlan", "bridge", "veth")
    before = Footprint()
    first, second = unique_name(), unique_name()
    try:
        for name in (first, second):
            run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "vxlan", "--no-cli",
                        "--name", name, check=True)
        states = {name: RunState.load(run_dir_for(name)) for name in (first, second)}
        for name, state in states.items():
            assert full_matrix(state) == [], name
            wide = run_testbed("get", "pods", "-o", "wide", "--name", name, check=True).stdout
            assert f"node1-pod1.default.{name}" in wide
        sandboxes = {name: {r.netns for r in s.pods.values()}
                     for name, s in states.items()}
        run_testbed("down", "--name", first, check=True)
        left = set(netns.netns_list())
        assert not sandboxes[first] & left and sandboxes[second] <= left
        assert full_matrix(states[second]) == []
        ping = run_testbed("exec", "--name", second, "node1-pod1", "--", "ping", "-c1", "-W2",
                           states[second].pods["default/node2-pod2"].ip)
        assert ping.returncode == 0
    finally:
        for name in (first, second):
            run_testbed("down", "--name", name)  # the first is gone already: refused, harmless
    assert Footprint().leftovers(before) == []


@pytest.mark.parametrize("mode", ["bgp", "openflow"])
def test_daemons_of_two_clusters_never_meet(make_cluster, mode):
    """BIRD (bgp) and Open vSwitch with os-ken (openflow) run per cluster, their sockets in
    the cluster's run directory: two clusters of one topology route each their own pods."""
    blue, green = make_cluster("default.yaml", mode), make_cluster("default.yaml", mode)
    for cluster in (blue, green):
        assert full_matrix(cluster.state) == [], cluster.spec.name
    assert {r.ip for r in blue.state.pods.values()} == \
        {r.ip for r in green.state.pods.values()}  # same addresses, apart
