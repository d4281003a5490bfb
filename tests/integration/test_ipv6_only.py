"""IPv6-only clusters (`ipFamily: ipv6`), as kind builds one: pods, Services and nodes of
the IPv6 family alone, over an underlay that keeps IPv4 beside it. Checked as upstream's e2e
checks a single-stack IPv6 cluster (every pod one IPv6 address, pod to pod on each path, a
Service on its IPv6 ClusterIP and NodePort, DNS answering AAAA), and the plugin's objects of
the IPv6 family alone: flannel with EnableIPv4 false, Calico with an IPv6 pool and bird6's
sessions only."""
import ipaddress
import json
import os
import subprocess

import pytest

from testbed.host import netns
from testbed.host.waiting import wait_until
from testbed.model.state import RunState, run_dir_for

from .conftest import run_testbed
from .test_connectivity import full_matrix_over
from .test_dual_stack_services import (
    KUBECTL,
    WEB,
    answers,
    kubectl,
    kubectl_cluster,
    spec_of,
)

MANIFEST = WEB + """---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: on-host}
spec:
  nodeName: node2
  hostNetwork: true
  containers:
  - {name: pause, image: registry.k8s.io/pause:3.10}
"""


@pytest.fixture(scope="module", params=["vxlan", "bgp"])
def cluster(request, tmp_path_factory, caps):
    for name, config in kubectl_cluster(tmp_path_factory, caps, request.param, "ipv6",
                                        MANIFEST, ready=("deploy/web", "pod/on-host")):
        yield name, config, request.param


def state_of(cluster):
    return RunState.load(run_dir_for(cluster[0]))


def in_node(cluster, node, *argv):
    return subprocess.run(netns.in_pod(f"{node}.{cluster[0]}", list(argv)),
                          capture_output=True, text=True, check=True).stdout


def test_every_pod_has_one_ipv6_address_and_reaches_every_other(cluster):
    state = state_of(cluster)
    for key, record in state.pods.items():
        if record.host_network:
            continue
        assert [ipaddress.ip_address(ip).version for ip in record.ips] == [6], key
        shown = json.loads(netns.run(netns.in_pod(record.netns, ["ip", "-j", "addr", "show",
                                                                 "dev", "eth0"])))
        assert [a["local"] for a in shown[0]["addr_info"] if a["scope"] == "global"] == \
            record.ips, key
    pods = json.loads(kubectl(cluster, "get", "pods", "-o", "json"))["items"]
    for p in pods:
        status = p["status"]
        assert [ip["ip"] for ip in status["podIPs"]] == [status["podIP"]], p["metadata"]
        assert ipaddress.ip_address(status["podIP"]).version == 6, p["metadata"]
    # every pod to every pod and node: same node, other node, other rack; ping and TCP
    assert full_matrix_over(state, family=6) == []
    nodes = json.loads(kubectl(cluster, "get", "nodes", "-o", "json"))["items"]
    for node in nodes:  # the InternalIP of the cluster's family first, its podCIDR IPv6
        internal = [a["address"] for a in node["status"]["addresses"] if a["type"] ==
                    "InternalIP"]
        assert ipaddress.ip_address(internal[0]).version == 6
        assert [ipaddress.ip_network(c).version for c in node["spec"]["podCIDRs"]] == [6]
    # a hostNetwork pod has its node's address of the cluster's family, as the kubelet says
    on_host = json.loads(kubectl(cluster, "get", "pod", "on-host", "-o", "json"))["status"]
    assert [ip["ip"] for ip in on_host["podIPs"]] == [node_of(cluster, "node2")]
    assert on_host["hostIP"] == node_of(cluster, "node2")


def test_services_are_ipv6_alone_and_answer_on_cluster_ip_node_port_and_dns(cluster):
    spec = spec_of(cluster, "web")
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv6"], "SingleStack")
    assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("fd00:10:96::/112")
    assert spec_of(cluster, "kubernetes")["clusterIP"] == "fd00:10:96::1"
    dns = json.loads(kubectl(cluster, "get", "svc", "-n", "kube-system", "kube-dns", "-o",
                             "json"))["spec"]
    assert (dns["clusterIP"], dns["ipFamilies"]) == ("fd00:10:96::a", ["IPv6"])
    names = {p["metadata"]["name"] for p in json.loads(kubectl(
        cluster, "get", "pods", "-l", "app=web", "-o", "json"))["items"]}
    node_ip = node_of(cluster, "node4")  # another rack
    for url in (f"http://[{spec['clusterIP']}]/hostname",
                f"http://[{node_ip}]:{spec['ports'][0]['nodePort']}/hostname",
                "http://web/hostname"):  # by name: resolv.conf's nameserver fd00:10:96::a
        assert wait_until(lambda url=url: answers(cluster, "node3-pod1", url) in names, 10,
                          0.2), url
    resolv = netns.run(netns.in_pod(f"node3-pod1.default.{cluster[0]}",
                                    ["cat", "/etc/resolv.conf"]))
    assert "nameserver fd00:10:96::a" in resolv
    # a pod reaches the API server through default/kubernetes over IPv6: by name, with its
    # service-account token, TLS checked against the certificate's names
    account = "/var/run/secrets/kubernetes.io/serviceaccount"
    got = run_testbed("exec", "node3-pod1", "--name", cluster[0], "--", "sh", "-c",
                      f'curl -s -m 5 --cacert {account}/ca.crt -H "Authorization: Bearer '
                      f'$(cat {account}/token)" https://kubernetes.default/api', check=True)
    versions = json.loads(got.stdout)["serverAddressByClientCIDRs"]
    assert versions[0]["serverAddress"] == f"[{node_of(cluster, 'node1')}]:6443"


def node_of(cluster, name):
    """A node's InternalIP of the cluster's family, as kubectl shows it."""
    node = json.loads(kubectl(cluster, "get", "node", name, "-o", "json"))
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def refusal(cluster, tmp_path, name, field):
    """What the API server says to a Service `name` with `field` (one line of its spec)."""
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(f"""apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  {field}
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
""")
    proc = subprocess.run([KUBECTL, "--kubeconfig", cluster[1], "apply", "-f", str(manifest)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def test_a_dual_stack_service_is_refused_and_ipv4_is_not_configured(cluster, tmp_path):
    assert "this cluster is not configured for dual-stack services" in refusal(
        cluster, tmp_path, "dual", "ipFamilyPolicy: RequireDualStack")
    assert '"IPv4": not configured on this cluster' in refusal(
        cluster, tmp_path, "four", "ipFamilies: [IPv4]")


def test_the_plugin_builds_the_ipv6_family_alone(cluster):
    state = state_of(cluster)
    if cluster[2] == "vxlan":
        links = in_node(cluster, "node1", "ip", "-br", "link")
        assert "flannel-v6.1" in links and "flannel.1 " not in links
        env = open(os.path.join(state.dir, "nodes", "node1", "run", "flannel",
                                "subnet.env")).read()
        assert "FLANNEL_IPV6_SUBNET=fd00:10:244::1/64" in env
        assert "FLANNEL_NETWORK=" not in env and "FLANNEL_SUBNET=" not in env
        assert "FLANNEL-POSTRTG" in in_node(cluster, "node1", "ip6tables-save", "-t", "nat")
        assert "FLANNEL" not in in_node(cluster, "node1", "iptables-save")
        far = state.nodes["node3"].lease.split(",")
        assert len(far) == 1 and ":" in far[0]
        assert "dev flannel-v6.1" in in_node(cluster, "node1", "ip", "-6", "route", "show",
                                             far[0])
    else:
        protocols = subprocess.run(
            ["birdc", "-s", state.nodes["node1"].details["bird_socket"], "show", "protocols"],
            capture_output=True, text=True, check=True).stdout
        sessions = {line.split()[0]: line for line in protocols.splitlines()
                    if " BGP " in line}
        assert set(sessions) == {"node_node2_v6", "rack_router_v6"}
        assert all("Established" in line for line in sessions.values())
        assert "blackhole" not in in_node(cluster, "node1", "ip", "-4", "route")
        assert "169.254.1.1" not in in_node(cluster, "node1", "ip", "-4", "route", "show",
                                            "table", "all")
        blocks = state.nodes["node1"].lease.split(",")
        assert all(b.endswith("/122") for b in blocks)
        routes = in_node(cluster, "node1", "ip", "-6", "route", "show", "proto", "bird")
        assert f"blackhole {blocks[0]}" in routes
        record = next(r for r in state.pods.values() if r.node == "node1")
        assert "default via fe80::ecee:eeff:feee:eeee dev eth0" in netns.run(
            netns.in_pod(record.netns, ["ip", "-6", "route", "show", "default"]))
        assert netns.run(netns.in_pod(record.netns, ["ip", "-4", "route"])).strip() == ""
