"""A run's state as kubectl shows it: the API's object shapes, kubectl's tables, finding a pod
by the name a user types, and `describe`."""
import os
import time

import pytest

from testbed import manifests
from testbed.api import describe
from testbed.api import objects as ko
from testbed.api import tables as inventory
from testbed.errors import TestbedError
from testbed.host.daemons import DaemonRecord
from testbed.host.processes import Process, process_start_time
from testbed.modes import services_by

from ..states import state_from


def pod(name, ns, ip, node, labels=None):
    return f"{ns}/{name}", {
        "name": name, "namespace": ns, "ip": ip, "node": node, "labels": labels or {},
        "netns": f"{name}.{ns}.c1", "containers": {}, "ports": {"serve-80-tcp": 80},
        "created": time.time() - 200}


def state():
    doc = {
        "name": "c1", "mode": "bgp", "created": time.time() - 300,
        "nodes": {"node1": {"ip": "192.168.1.11", "rack": "rack1", "lease": "10.244.0.0/24"},
                  "node2": {"ip": "192.168.1.12", "rack": "rack1", "lease": "10.244.1.0/24"}},
        "pods": dict([pod("a", "x", "10.244.0.5", "node1", {"pod": "a"}),
                      pod("a", "y", "10.244.1.5", "node2", {"pod": "a"}),
                      pod("b", "x", "10.244.1.6", "node2", {"pod": "b"})]),
        "namespaces": {"x": {"labels": {}}, "y": {"labels": {"team": "blue"}}},
        "services": {"x/s-x-a": {
            "type": "NodePort", "cluster_ip": "10.96.0.5", "selector": {"pod": "a"},
            "ports": [{"name": "service-port-tcp-80", "port": 80, "target_port": 80,
                       "node_port": 30080, "protocol": "TCP"}],
            "session_affinity": "None", "external_name": "", "load_balancer_ip": ""}},
        "network_policy": {"enforced": True, "note": "per-pod chains in table ip calico"},
    }
    text = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            "metadata: {name: from-ten, namespace: x}\nspec:\n  podSelector: {matchLabels: "
            "{pod: a}}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.244.0.1/4}}]\n"
            "    ports: [{protocol: SCTP, port: 80}]\n")
    return state_from(doc, manifests.parse(text).objects)


def test_pods_are_listed_per_namespace_in_the_apis_shape():
    data = state()
    items = ko.pods(data, "x")
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in items] == \
        [("x", "a"), ("x", "b")]
    first = items[0]
    assert (first["apiVersion"], first["kind"]) == ("v1", "Pod")
    assert first["metadata"]["labels"] == {"pod": "a"}
    assert first["metadata"]["annotations"] == {ko.SANDBOX_ANNOTATION: "a.x.c1"}
    assert first["spec"]["nodeName"] == "node1"
    assert first["status"]["podIP"] == "10.244.0.5" and \
        first["status"]["hostIP"] == "192.168.1.11"
    assert len(ko.pods(data)) == 3  # every namespace
    listing = ko.listing(items)
    assert (listing["apiVersion"], listing["kind"], len(listing["items"])) == ("v1", "List", 2)


def test_services_endpoints_nodes_and_namespaces():
    data = state()
    svc = ko.services(data, "x")[0]
    assert svc["spec"]["ports"] == [{"name": "service-port-tcp-80", "port": 80,
                                     "targetPort": 80, "nodePort": 30080, "protocol": "TCP"}]
    assert ko.services(data, "y") == []
    eps = ko.endpoints(data, "x")[0]
    assert eps["subsets"] == [{
        "addresses": [{"ip": "10.244.0.5", "nodeName": "node1",
                       "targetRef": {"kind": "Pod", "namespace": "x", "name": "a"}}],
        "ports": [{"port": 80, "protocol": "TCP", "name": "service-port-tcp-80"}]}]
    node = ko.nodes(data)[0]
    assert node["spec"]["podCIDR"] == "10.244.0.0/24"
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "192.168.1.11"}
    names = {n["metadata"]["name"]: n["metadata"]["labels"] for n in ko.namespaces(data)}
    assert set(names) == {"default", "kube-system", "x", "y"}
    assert names["y"] == {"team": "blue", "kubernetes.io/metadata.name": "y"}


def test_a_policy_is_shown_as_stored_with_its_cidr_masked():
    shown = ko.network_policies(state(), "x")[0]
    assert shown["spec"] == {
        "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/4"}}],
                     "ports": [{"protocol": "SCTP", "port": 80}]}]}


def test_tables_have_kubectls_columns():
    data = state()
    rows = inventory.rows("pods", ko.pods(data, "x"), data, now=data.pods["x/a"].created + 200)
    assert rows[0] == ("NAME", "READY", "STATUS", "RESTARTS", "AGE")
    assert rows[1][:4] == ("a", "0/0", "Pending", "0")  # no container in this state
    assert rows[1][4] == "3m20s"
    wide = inventory.rows("pods", ko.pods(data), data, all_namespaces=True, wide=True)
    assert wide[0] == ("NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                       "SANDBOX")
    assert [r[0:2] + r[6:] for r in wide[1:]] == [
        ("x", "a", "10.244.0.5", "node1", "a.x.c1"), ("x", "b", "10.244.1.6", "node2", "b.x.c1"),
        ("y", "a", "10.244.1.5", "node2", "a.y.c1")]
    svc = inventory.rows("services", ko.services(data, "x"), data)
    assert svc[1][:5] == ("s-x-a", "NodePort", "10.96.0.5", "<none>", "80:30080/TCP")
    netpol = inventory.rows("networkpolicies", ko.network_policies(data, "x"), data, wide=True)
    assert netpol[1][0:2] == ("from-ten", "pod=a") and netpol[1][3:] == ("Ingress", "yes")


@pytest.mark.parametrize("seconds, text", [
    (5, "5s"), (119, "119s"), (200, "3m20s"), (600, "10m"), (3 * 3600 + 600, "3h10m"),
    (30 * 3600, "30h"), (3 * 86400 + 4 * 3600, "3d4h"), (20 * 86400, "20d")])
def test_age_reads_as_kubectl_writes_it(seconds, text):
    assert inventory.human_duration(seconds) == text


def test_a_pod_is_found_by_name_in_its_namespace_or_by_namespace_and_name():
    data = state()
    assert inventory.find_pod(data, "a", "y")[0] == "y/a"
    assert inventory.find_pod(data, "x/b")[0] == "x/b"
    with pytest.raises(TestbedError, match=r'pods "a" not found in namespace default; there '
                                           r'is x/a, y/a \(use -n\)'):
        inventory.find_pod(data, "a")


def test_describe_says_what_picks_a_pod_and_what_a_policy_selects():
    data = state()
    text = describe.describe(data, "pod", "a", "x")
    assert "Sandbox:      a.x.c1 (ip netns exec a.x.c1 ...)" in text
    assert "Services:     x/s-x-a" in text
    assert "  Ingress: isolated by x/from-ten" in text and "  Egress:  not isolated" in text
    netpol = describe.describe(data, "netpol", "from-ten", "x")
    assert "    To Port: 80/SCTP" in netpol and "        CIDR: 0.0.0.0/4" in netpol
    assert "Selects pods: x/a" in netpol
    with pytest.raises(TestbedError, match='networkpolicies "nope" not found in namespace x'):
        describe.describe(data, "netpol", "nope", "x")


def test_describe_a_service_lists_its_endpoints_per_port():
    text = describe.describe(state(), "svc", "s-x-a", "x")
    assert "Selector:         pod=a" in text and "IP:               10.96.0.5" in text
    assert "NodePort:         service-port-tcp-80  30080/TCP" in text
    assert "Endpoints:        10.244.0.5:80" in text


def test_a_service_shows_its_traffic_fields_as_kubectl_does():
    data = state()
    rec = data.services["x/s-x-a"]
    rec.type, rec.load_balancer_ip, rec.external_ips = "LoadBalancer", "192.168.1.240", \
        ["192.168.99.22"]
    rec.external_traffic_policy, rec.health_check_node_port = "Local", 30100
    rec.source_ranges = ["203.0.113.0/25"]
    text = describe_service(data)
    for line in ("External IPs:     192.168.99.22", "External Traffic Policy:  Local",
                 "Internal Traffic Policy:  Cluster", "HealthCheck NodePort:     30100",
                 "LoadBalancer Source Ranges:203.0.113.0/25"):
        assert line in text, line
    assert any(line.strip().startswith("KUBE-FW-") for line in text.splitlines())
    assert "(this node's endpoints)" in text  # policy Local: KUBE-SVL
    rows = inventory.rows("services", ko.services(data), data)
    assert rows[1][3] == "192.168.1.240,192.168.99.22"  # load balancer, then external IPs
    spec = ko.services(data)[0]["spec"]
    assert spec["externalTrafficPolicy"] == "Local" and spec["healthCheckNodePort"] == 30100


def test_describe_a_node_names_its_pods_daemons_and_events():
    data = state()
    data.daemons = {"bird@node1": DaemonRecord("node1", 42, False, "killed by SIGKILL"),
                    "bird@node2": DaemonRecord("node2", 43, True, "running")}
    data.event("Warning", "DaemonDied", "daemon/bird@node1", "bird@node1 on node1 killed")
    data.event("Normal", "Started", "pod/x/a", "Started main")
    text = describe.describe(data, "node", "node1")
    assert "  InternalIP:  192.168.1.11" in text and "PodCIDR:      10.244.0.0/24" in text
    assert "Non-terminated Pods:  (1 in total)" in text and "10.244.0.5" in text
    assert "bird@node1" in text and "bird@node2" not in text
    events = text.split("Events:", 1)[1]
    assert "Warning   DaemonDied   0s     supervisor   bird@node1 on node1 killed" in events
    assert "Started main" not in events  # another object's
    assert "Started main" in describe.describe(data, "pod", "a", "x")
    with pytest.raises(TestbedError, match='nodes "node9" not found'):
        describe.describe(data, "node", "node9")


def describe_service(data):
    """`testbed describe svc s-x-a -n x`, with the chains of what serves the run's Services."""
    return describe.describe(data, "svc", "s-x-a", "x", services_by(data.mode, data.proxy_mode))


def test_describe_a_service_names_kube_proxys_chains():
    data = state()
    text = describe_service(data)
    assert "kube-proxy (iptables), port service-port-tcp-80:" in text
    chains = [line.strip() for line in text.splitlines() if line.startswith("  KUBE-")]
    assert chains[0].startswith("KUBE-SVC-") and chains[1].startswith("KUBE-SEP-") and \
        chains[1].endswith("(10.244.0.5:80)")
    assert chains[2].startswith("KUBE-EXT-") and len(chains) == 3  # a NodePort's way in
    data.proxy_mode = "nftables"
    assert "  service-" in describe_service(data)
    data.proxy_mode = "ipvs"
    assert "  IPVS virtual server 10.96." in describe_service(data)
    data.mode, data.proxy_mode = "ebpf", "bpf"  # the ebpf mode's replacement describes itself
    text = describe_service(data)
    assert "BPF service maps (kube-proxy replaced), port service-port-tcp-80:" in text
    assert "in cilium_lb4_services_v2 of every node" in text and "kube-proxy (" not in text


def test_an_ingress_is_listed_and_described_with_its_backends_endpoints():
    data = state()
    data.ingresses["x/shop"] = {"created": time.time() - 30, "spec": {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["www.example.com"], "secretName": "www-tls"}],
        "rules": [{"host": "www.example.com", "http": {"paths": [
            {"path": "/a", "pathType": "Prefix",
             "backend": {"service": {"name": "s-x-a", "port": {"number": 80}}}},
            {"path": "/gone", "pathType": "Prefix",
             "backend": {"service": {"name": "gone", "port": {"number": 80}}}}]}}]}}
    rows = inventory.rows("ingresses", ko.ingresses(data), data)
    assert rows[0] == ("NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE")
    assert rows[1][:5] == ("shop", "nginx", "www.example.com", "", "80, 443")
    text = describe.describe(data, "ing", "shop", "x")
    assert "  www-tls terminates www.example.com" in text
    assert "/a      s-x-a:80 (10.244.0.5:80)" in text
    assert 'gone:80 (<error: services "gone" not found>)' in text


def test_a_pod_whose_container_process_is_gone_is_reported_not_ready():
    data = state()
    rec = data.pods["x/a"]
    rec.containers = {"live": Process(os.getpid(), process_start_time(os.getpid())),
                      "gone": Process(os.getpid(), 1)}  # a start time this PID never had
    status = ko.running_pod_status(rec, ["192.168.1.11"])
    by_name = {c["name"]: c for c in status["containerStatuses"]}
    assert by_name["live"]["ready"] and "running" in by_name["live"]["state"]
    assert not by_name["gone"]["ready"]
    assert by_name["gone"]["state"]["terminated"]["reason"] == "Error"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    assert ko.pod_status(rec) == ("1/2", "Error")
    rec.containers.pop("gone")
    assert ko.pod_status(rec) == ("1/1", "Running")


def dual_stack_state():
    """state() with pod x/a and its node given an IPv6 address and lease each."""
    data = state()
    rec = data.pods["x/a"]
    rec.ips = [rec.ip, "fd00:10:244::5"]
    node = data.nodes[rec.node]
    node.ip_v6, node.lease = "fd00:192:168:1::11", f"{node.lease},fd00:10:244::/64"
    return data, rec, node


def test_a_dual_stack_pod_and_node_report_an_address_of_each_family():
    data, rec, node = dual_stack_state()
    pod = next(p for p in ko.pods(data) if p["metadata"]["name"] == "a")
    assert [e["ip"] for e in pod["status"]["podIPs"]] == [rec.ip, "fd00:10:244::5"]
    assert pod["status"]["podIP"] == rec.ip
    assert [e["ip"] for e in pod["status"]["hostIPs"]] == [node.ip, "fd00:192:168:1::11"]
    node_obj = next(n for n in ko.nodes(data) if n["metadata"]["name"] == rec.node)
    assert node_obj["spec"]["podCIDRs"][1] == "fd00:10:244::/64"
    assert [a["address"] for a in node_obj["status"]["addresses"]] == [
        node.ip, "fd00:192:168:1::11", rec.node]


def test_describe_a_dual_stack_pod_and_node_lists_every_address():
    data, rec, node = dual_stack_state()
    text = describe.describe(data, "pod", "a", "x")
    assert f"IPs:\n  IP:  {rec.ip}\n  IP:  fd00:10:244::5" in text
    text = describe.describe(data, "node", rec.node)
    assert "  InternalIP:  fd00:192:168:1::11" in text
    assert f"PodCIDR:      {node.lease.split(',')[0]}\n" in text
    assert f"PodCIDRs:     {node.lease}" in text
