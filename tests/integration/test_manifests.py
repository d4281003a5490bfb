"""Kubernetes manifests applied to a running cluster: pods answer as their images would,
Deployments spread and scale, bad manifests change nothing."""
import subprocess

from testbed import netns

from .conftest import TOPO, Footprint, run_testbed, unique_name

SHOP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: web}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: agnhost
          image: registry.k8s.io/e2e-test-images/agnhost:2.47
          args: [netexec, --http-port=8080]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: shop}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
"""


def curl(pod, url):
    return subprocess.run(netns.in_pod(pod, ["curl", "-s", "--max-time", "3", url]),
                          capture_output=True, text=True).stdout


def cluster_ips(name):
    rows = run_testbed("get", "svc", "--name", name, check=True).stdout.splitlines()[1:]
    return {r.split()[0]: r.split()[3] for r in rows}


def shop_pods(name):
    rows = run_testbed("get", "pods", "--name", name, check=True).stdout.splitlines()[1:]
    return {r.split()[0]: {"node": r.split()[5], "ip": r.split()[4], "status": r.split()[3]}
            for r in rows if r.split()[1] == "shop"}


def test_apply_scale_and_delete_a_deployment(require, tmp_path):
    require("vxlan", "bridge", "veth")
    before, name = Footprint(), unique_name()
    manifest = tmp_path / "shop.yaml"
    run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "vxlan", "--no-cli",
                "--name", name, check=True)
    try:
        manifest.write_text(SHOP.replace("REPLICAS", "4"))
        applied = run_testbed("apply", "-f", manifest, "--name", name, check=True)
        assert applied.stdout.count("pod/web-") == 4 and "deployment/web created" in \
            applied.stdout
        assert "ConfigMap is not implemented" in applied.stderr
        assert "readinessProbe: not implemented" in applied.stderr
        assert "service/web created" in applied.stdout
        pods = shop_pods(name)
        assert sorted(p["node"] for p in pods.values()) == ["node1", "node1", "node2", "node2"]
        rs = next(iter(pods)).rsplit("-", 1)[0]
        assert all(p.rsplit("-", 1)[0] == rs for p in pods)  # one ReplicaSet
        for pod, rec in pods.items():  # netexec answers with its pod's name, across nodes
            assert curl("node1-pod1", f"http://{rec['ip']}:8080/hostname") == pod
        # through the ClusterIP: kube-proxy's statistic rules spread new connections
        svc = cluster_ips(name)
        answers = [curl("node1-pod1", f"http://{svc['web']}/hostname") for _ in range(60)]
        assert set(answers) == set(pods)
        assert min(answers.count(p) for p in pods) >= 4, answers  # 15 expected of each
        sticky = {curl("node2-pod2", f"http://{svc['sticky']}/hostname") for _ in range(15)}
        assert len(sticky) == 1 and sticky <= set(pods)

        manifest.write_text(SHOP.replace("REPLICAS", "2"))
        scaled = run_testbed("apply", "-f", manifest, "--name", name, check=True)
        assert "pod/web-" not in scaled.stdout and len(shop_pods(name)) == 2
        gone = set(pods) - set(shop_pods(name))
        assert len(gone) == 2 and not gone & set(netns.netns_list())
        endpoints = run_testbed("get", "endpoints", "--name", name, check=True).stdout
        web = next(line for line in endpoints.splitlines() if line.startswith("web "))
        assert web.count(":8080") == 2  # the endpoints followed the scale-down
        answers = {curl("node1-pod1", f"http://{svc['web']}/hostname") for _ in range(20)}
        assert answers == set(shop_pods(name))

        deleted = run_testbed("delete", "-f", manifest, "--name", name, check=True)
        assert "namespace/shop deleted" in deleted.stdout and shop_pods(name) == {}
    finally:
        run_testbed("down", "--name", name, check=True)
    assert Footprint().leftovers(before) == []


def test_bad_manifests_change_nothing(require, tmp_path):
    require("vxlan", "bridge", "veth")
    name = unique_name()
    run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "vxlan", "--no-cli",
                "--name", name, check=True)
    try:
        before = run_testbed("get", "pods", "--name", name, check=True).stdout
        broken = tmp_path / "broken.yaml"
        broken.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [oops\n")
        out = run_testbed("apply", "-f", broken, "--name", name)
        assert out.returncode == 2 and f"{broken}:4: malformed YAML" in out.stderr
        orphan = tmp_path / "orphan.yaml"
        orphan.write_text(SHOP.replace("REPLICAS", "2").split("---", 1)[1])  # no Namespace
        out = run_testbed("apply", "-f", orphan, "--name", name)
        assert out.returncode == 2 and "namespace 'shop' does not exist" in out.stderr
        assert run_testbed("get", "pods", "--name", name, check=True).stdout == before
    finally:
        run_testbed("down", "--name", name, check=True)


def test_a_topology_can_name_manifests(make_cluster, tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP.replace("REPLICAS", "2"))
    topo = tmp_path / "with-manifests.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "manifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "host-gw")
    shop = {p: r for p, r in cluster.state.data["pods"].items() if r["namespace"] == "shop"}
    assert len(shop) == 2 and {r["node"] for r in shop.values()} == {"node1", "node2"}
    assert any("ConfigMap" in w for w in cluster.state.data["warnings"])


NODE_PORT = """\
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"""


def test_a_node_port_answers_the_external_client(make_cluster, tmp_path):
    namespace_and_deployment = "---".join(SHOP.replace("REPLICAS", "2").split("---")[:2])
    (tmp_path / "shop.yaml").write_text(namespace_and_deployment + NODE_PORT)
    topo = tmp_path / "external.yaml"
    topo.write_text((TOPO / "two-racks.yaml").read_text() +
                    "externalClient: true\nmanifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "vxlan")
    client = cluster.state.data["hosts"]["external"]
    assert client["ip"] == "192.168.1.254"  # on the first rack, outside the cluster
    shop = {p for p, r in cluster.state.data["pods"].items() if r["namespace"] == "shop"}
    answers = set()
    for node in cluster.state.data["nodes"].values():  # every node answers, on either rack
        answers.add(netns.run(netns.in_node(client["pid"], [
            "curl", "-s", "--max-time", "3", f"http://{node['ip']}:30080/hostname"])))
    assert answers and answers <= shop
