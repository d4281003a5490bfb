"""Kubernetes manifests applied to a running cluster: pods answer as their images would,
Deployments spread and scale, bad manifests change nothing."""
import json
import subprocess

import pytest

from testbed.host import netns
from testbed.kubelet.runtime import sandbox_name
from testbed.kubeproxy.modes import get_proxy_mode

from .conftest import TOPO, Footprint, in_pod, pod, run_testbed, unique_name

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


def curl(sandbox, url):
    return subprocess.run(netns.in_pod(sandbox, ["curl", "-s", "--max-time", "3", url]),
                          capture_output=True, text=True).stdout


def cluster_ips(name):
    rows = run_testbed("get", "svc", "-n", "shop", "--name", name,
                       check=True).stdout.splitlines()[1:]
    return {r.split()[0]: r.split()[2] for r in rows}


def shop_pods(name):
    """{name: node, ip, phase} of namespace shop's pods, read as kubectl's JSON."""
    out = run_testbed("get", "pods", "-n", "shop", "-o", "json", "--name", name, check=True)
    return {p["metadata"]["name"]: {"node": p["spec"]["nodeName"], "ip": p["status"]["podIP"],
                                    "status": p["status"]["phase"]}
            for p in json.loads(out.stdout)["items"]}


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables", "ipvs"])
def test_apply_scale_and_delete_a_deployment(require, tmp_path, proxy_mode):
    require("vxlan", "bridge", "veth", *get_proxy_mode(proxy_mode).needs)
    before, name = Footprint(), unique_name()
    manifest = tmp_path / "shop.yaml"
    run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "vxlan", "--no-cli",
                "--name", name, "--proxy-mode", proxy_mode, check=True)
    try:
        manifest.write_text(SHOP.replace("REPLICAS", "4"))
        applied = run_testbed("apply", "-f", manifest, "--name", name, check=True)
        # as kubectl prints it: the objects of the file, not the pods the Deployment made
        assert "deployment.apps/web created" in applied.stdout and \
            "pod/web-" not in applied.stdout
        assert "ConfigMap is not implemented" in applied.stderr
        assert "readinessProbe: not implemented" in applied.stderr
        assert "service/web created" in applied.stdout
        pods = shop_pods(name)
        assert sorted(p["node"] for p in pods.values()) == ["node1", "node1", "node2", "node2"]
        assert {p["status"] for p in pods.values()} == {"Running"}
        rs = next(iter(pods)).rsplit("-", 1)[0]
        assert all(p.rsplit("-", 1)[0] == rs for p in pods)  # one ReplicaSet
        client = sandbox_name(name, "default", "node1-pod1")
        for pod, rec in pods.items():  # netexec answers with its pod's name, across nodes
            assert curl(client, f"http://{rec['ip']}:8080/hostname") == pod
        # through the ClusterIP: kube-proxy's statistic rules spread new connections
        svc = cluster_ips(name)
        answers = [curl(client, f"http://{svc['web']}/hostname") for _ in range(60)]
        assert set(answers) == set(pods)
        assert min(answers.count(p) for p in pods) >= 4, answers  # 15 expected of each
        sticky = {curl(sandbox_name(name, "default", "node2-pod2"),
                       f"http://{svc['sticky']}/hostname") for _ in range(15)}
        assert len(sticky) == 1 and sticky <= set(pods)

        manifest.write_text(SHOP.replace("REPLICAS", "2"))
        scaled = run_testbed("apply", "-f", manifest, "--name", name, check=True)
        assert "pod/web-" not in scaled.stdout and len(shop_pods(name)) == 2
        gone = set(pods) - set(shop_pods(name))
        assert len(gone) == 2
        assert not {sandbox_name(name, "shop", p) for p in gone} & set(netns.netns_list())
        endpoints = run_testbed("get", "endpoints", "-n", "shop", "--name", name,
                                check=True).stdout
        web = next(line for line in endpoints.splitlines() if line.startswith("web "))
        assert web.count(":8080") == 2  # the endpoints followed the scale-down
        answers = {curl(client, f"http://{svc['web']}/hostname") for _ in range(20)}
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
        before = run_testbed("get", "pods", "-A", "-o", "json", "--name", name,
                             check=True).stdout
        broken = tmp_path / "broken.yaml"
        broken.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [oops\n")
        out = run_testbed("apply", "-f", broken, "--name", name)
        assert out.returncode == 2 and f"{broken}:4: malformed YAML" in out.stderr
        orphan = tmp_path / "orphan.yaml"
        orphan.write_text(SHOP.replace("REPLICAS", "2").split("---", 1)[1])  # no Namespace
        out = run_testbed("apply", "-f", orphan, "--name", name)  # each object refused
        assert out.returncode == 1 and out.stderr.count('namespaces "shop" not found') == \
            out.stderr.count("Error from server (NotFound): error when creating") >= 3
        system = tmp_path / "system.yaml"
        system.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n")
        out = run_testbed("delete", "-f", system, "--name", name)
        assert out.returncode == 2 and "namespace 'kube-system' may not be deleted" in out.stderr
        assert run_testbed("get", "pods", "-A", "-o", "json", "--name", name,
                           check=True).stdout == before
    finally:
        run_testbed("down", "--name", name, check=True)


def test_a_topology_can_name_manifests(make_cluster, tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP.replace("REPLICAS", "2"))
    topo = tmp_path / "with-manifests.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "manifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "host-gw")
    shop = {p: r for p, r in cluster.state.pods.items() if r.namespace == "shop"}
    assert len(shop) == 2 and {r.node for r in shop.values()} == {"node1", "node2"}
    assert any("ConfigMap" in w for w in cluster.state.warnings)


NODE_PORT = """\
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: shop}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.mark.parametrize("mode", ["vxlan", "ebpf"])  # ebpf: kube-proxy replaced by BPF
def test_a_node_port_answers_the_external_client(make_cluster, tmp_path, mode):
    namespace_and_deployment = "---".join(SHOP.replace("REPLICAS", "2").split("---")[:2])
    (tmp_path / "shop.yaml").write_text(namespace_and_deployment + NODE_PORT)
    topo = tmp_path / "external.yaml"
    topo.write_text((TOPO / "two-racks.yaml").read_text() +
                    "externalClient: true\nmanifests: [shop.yaml]\n")
    cluster = make_cluster(topo, mode)
    client = cluster.state.hosts["external"]
    assert client.ip == "192.168.1.254"  # on the first rack, outside the cluster
    shop = {r.name for r in cluster.state.pods.values() if r.namespace == "shop"}

    def ask(address):
        return netns.run(netns.in_node(client.pid, [
            "curl", "-s", "--max-time", "3", f"http://{address}/hostname"]))

    # every node answers on the node port, on either rack
    answers = {ask(f"{node.ip}:30080") for node in cluster.state.nodes.values()}
    assert answers and answers <= shop
    # a LoadBalancer's address is announced on the first rack and reaches every endpoint
    lb_ip = cluster.state.services["shop/web-lb"].load_balancer_ip
    assert lb_ip == "192.168.1.240"
    assert {ask(lb_ip) for _ in range(20)} == shop


DNS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
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
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: peers, namespace: shop}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  type: ExternalName
  externalName: db.example.org
"""


def test_cluster_dns_answers_pods_in_every_namespace(make_cluster, tmp_path):
    (tmp_path / "shop.yaml").write_text(DNS.replace("REPLICAS", "3"))
    topo = tmp_path / "dns.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "kubeProxy: {mode: nftables}\n"
                    "manifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "vxlan")
    data = cluster.state
    shop = {r.name: r.ip for r in data.pods.values() if r.namespace == "shop"}
    web_ip = data.services["shop/web"].cluster_ip
    client = next(f"shop/{p}" for p in shop)

    def run(name, *argv):
        """argv in a pod: one of default's by name, or NAMESPACE/NAME."""
        ns, _, pod_name = name.rpartition("/")
        return netns.run(in_pod(cluster, pod_name, argv, ns or "default"), check=False)

    assert run("node1-pod1", "cat", "/etc/resolv.conf").splitlines() == [
        "search default.svc.cluster.local svc.cluster.local cluster.local",
        "nameserver 10.96.0.10", "options ndots:5"]
    # the short name in its own namespace, <svc>.<ns> from another; through the search list
    assert run(client, "getent", "hosts", "web").split()[:2] == [web_ip,
                                                                 "web.shop.svc.cluster.local"]
    assert f"Address: {web_ip}" in run("node2-pod1", "nslookup", "web.shop")
    assert run("node2-pod2", "curl", "-s", "--max-time", "3", "http://web.shop/hostname") in shop
    # over TCP too, and a headless Service answers with its pods
    assert run("node1-pod2", "dig", "+tcp", "+short", "web.shop.svc.cluster.local").split() == \
        [web_ip]
    assert sorted(run("node1-pod1", "dig", "+short", "peers.shop.svc.cluster.local").split()) \
        == sorted(shop.values())
    srv = run("node1-pod1", "dig", "+short", "SRV", "_http._tcp.web.shop.svc.cluster.local")
    assert srv.split() == ["0", "100", "80", "web.shop.svc.cluster.local."]
    assert "CNAME\tdb.example.org." in run(client, "dig", "+search", "db.default")
    client_ip = shop[client.split("/")[1]]
    dashed = client_ip.replace(".", "-")
    assert run("node1-pod1", "dig", "+short", f"{dashed}.shop.pod.cluster.local").strip() == \
        client_ip
    # reverse lookups and the schema version, as the DNS specification requires
    assert run(client, "dig", "+short", "-x", web_ip).strip() == "web.shop.svc.cluster.local."
    assert run(client, "dig", "+short", "-x", "10.96.0.10").strip() == \
        "kube-dns.kube-system.svc.cluster.local."
    assert run(client, "dig", "+short", "-x", client_ip).strip() == \
        f"{dashed}.peers.shop.svc.cluster.local."  # an endpoint of headless peers
    assert run(client, "dig", "+short", "TXT", "dns-version.cluster.local").strip() == '"1.1.0"'

    # endpoints and records follow a scale-down
    (tmp_path / "shop.yaml").write_text(DNS.replace("REPLICAS", "1"))
    from testbed import manifests
    from testbed.api import apply
    apply.apply(cluster, manifests.load(str(tmp_path / "shop.yaml")))
    left = [r.ip for r in data.pods.values() if r.namespace == "shop"]
    assert len(left) == 1
    assert run("node2-pod1", "dig", "+short", "peers.shop.svc.cluster.local").split() == left


def test_ipvs_is_refused_where_the_kernel_lacks_it(tmp_path):
    from testbed.lifecycle import doctor
    if doctor.capabilities().get("ipvs"):
        pytest.skip("this kernel has IPVS")
    before = Footprint()
    out = run_testbed("up", "--topo", TOPO / "default.yaml", "--mode", "vxlan", "--no-cli",
                      "--name", unique_name(), "--proxy-mode", "ipvs")
    assert out.returncode == 2
    assert "kube-proxy mode ipvs needs the kernel's IPVS (ip_vs)" in out.stderr
    assert Footprint().leftovers(before) == []


@pytest.mark.parametrize("mode", ["vxlan", "host-gw", "udp", "bgp", "openflow", "ebpf"])
def test_services_and_dns_work_in_every_mode(make_cluster, tmp_path, mode):
    (tmp_path / "shop.yaml").write_text(DNS.replace("REPLICAS", "2"))
    topo = tmp_path / "services.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "manifests: [shop.yaml]\n")
    cluster = make_cluster(topo, mode)
    data = cluster.state
    shop = {r.name: r for r in data.pods.values() if r.namespace == "shop"}
    assert {r.node for r in shop.values()} == {"node1", "node2"}
    for client in ("node1-pod1", "node2-pod1"):  # one endpoint on the client's node, one not
        answers = {curl(pod(cluster, client).netns, "http://web.shop/hostname")
                   for _ in range(16)}
        assert answers == set(shop), (client, answers)
    # a node's own connection to a ClusterIP goes through kube-proxy's OUTPUT rules
    web_ip = data.services["shop/web"].cluster_ip
    answer = netns.run(netns.in_node(data.nodes["node1"].pid, [
        "curl", "-s", "--max-time", "3", f"http://{web_ip}/hostname"]), check=False)
    assert answer in shop
