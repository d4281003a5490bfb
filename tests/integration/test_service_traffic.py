"""Where kube-proxy's rules let Service traffic go, and where they stop it, on real namespaces:
a Service with no endpoints refuses at once, loadBalancerSourceRanges keep other clients out,
externalTrafficPolicy Local keeps the client's address and serves only from nodes with an
endpoint, internalTrafficPolicy Local keeps in-cluster traffic on the client's node."""
import json
import subprocess
import time

import pytest

from testbed.host import netns

from .conftest import REPO, TOPO, in_pod, pod, run_testbed

EXAMPLE = REPO / "docs" / "examples" / "traffic.yaml"  # the page's example, applied as is


def curl(argv_prefix, url, wait=2):
    """(curl's exit code, its output, seconds taken)."""
    started = time.monotonic()
    proc = subprocess.run(argv_prefix(["curl", "-s", "--max-time", str(wait), url]),
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout, time.monotonic() - started


# ebpf: kube-proxy replaced by the mode's BPF service maps (the kubeProxy key is not read)
@pytest.mark.parametrize("mode,proxy", [("vxlan", "iptables"), ("bgp", "nftables"),
                                        ("ebpf", "iptables")])
def test_services_refuse_drop_and_keep_traffic_local_as_kube_proxy_does(
        make_cluster, tmp_path, mode, proxy):
    topo = tmp_path / "topo.yaml"
    topo.write_text((TOPO / "two-racks.yaml").read_text() + "externalClient: true\n"
                    f"kubeProxy: {{mode: {proxy}}}\nmanifests: [{EXAMPLE}]\n")
    cluster = make_cluster(topo, mode)
    services = cluster.state.services
    client = cluster.state.hosts["external"]

    def external(argv):
        return netns.in_node(client.pid, argv)

    def from_pod(name):
        return lambda argv: in_pod(cluster, name, argv, "traffic")

    # no endpoints: refused at once (REJECT), from a pod and from outside through a NodePort
    code, _, took = curl(from_pod("client1"), f"http://{services['traffic/nobody'].cluster_ip}/")
    assert code == 7 and took < 1.5, (code, took)  # 7: connection refused
    node1, node2 = (cluster.state.nodes[n].ip for n in ("node1", "node2"))
    code, _, took = curl(external, f"http://{node2}:30090/")
    assert code == 7 and took < 1.5, (code, took)

    # externalTrafficPolicy Local: the node with an endpoint answers and sees the client's own
    # address; the node without one drops the connection
    code, out, _ = curl(external, f"http://{node1}:30091/clientip")
    assert code == 0 and out.split(":")[0] == client.ip, out
    code, out, _ = curl(external, f"http://{node1}:30091/hostname")
    assert out == "web1"
    code, _, took = curl(external, f"http://{node2}:30091/hostname", wait=1)
    assert code == 28, (code, took)  # 28: timed out, nothing answered
    # internalTrafficPolicy Local: a pod reaches only its own node's endpoint, and nothing
    # from a node without one
    node_local = f"http://{services['traffic/node-local'].cluster_ip}/hostname"
    assert {curl(from_pod("client1"), node_local)[1] for _ in range(8)} == {"web1"}
    assert curl(from_pod("client2"), node_local, wait=1)[0] == 28

    # a LoadBalancer with policy Local: announced from a node with an endpoint (node1, on the
    # client's rack), the client's address kept; its health-check port says which nodes have
    # endpoints, as a cloud load balancer would ask; kube-proxy's /healthz answers everywhere
    local_lb = services["traffic/lb-local"]
    code, out, _ = curl(external, f"http://{local_lb.load_balancer_ip}/clientip")
    assert code == 0 and out.split(":")[0] == client.ip, out
    health = local_lb.health_check_node_port
    code, out, _ = curl(external, f"http://{node1}:{health}/")
    assert json.loads(out)["localEndpoints"] == 1 and '"name": "lb-local"' in out
    status_only = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
    assert netns.run(external(status_only + [f"http://{node2}:{health}/"]),
                     check=False) == "503"  # no endpoint on node2
    code, out, _ = curl(external, f"http://{node2}:10256/healthz")
    assert code == 0 and json.loads(out)["nodeEligible"] is True

    # loadBalancerSourceRanges: the external client (192.168.1.254) is inside one, not the
    # other
    code, out, _ = curl(external, f"http://{services['traffic/lb-open'].load_balancer_ip}/"
                                  "hostname")
    assert code == 0 and out in {"web1", "web3"}
    code, _, _ = curl(external, f"http://{services['traffic/lb-closed'].load_balancer_ip}/",
                      wait=1)
    assert code == 28


SPREAD = """\
apiVersion: v1
kind: Namespace
metadata: {name: spread}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: spread}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: agnhost
          image: registry.k8s.io/e2e-test-images/agnhost:2.47
          args: [netexec, --http-port=8080]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: spread}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: spread}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.mark.parametrize("mode", ["vxlan", "bgp"])
def test_the_userspace_proxy_spreads_connections_and_keeps_affinity(make_cluster, tmp_path,
                                                                    mode):
    (tmp_path / "spread.yaml").write_text(SPREAD)
    topo = tmp_path / "topo.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "kubeProxy: {mode: userspace}\n"
                    "manifests: [spread.yaml]\n")
    cluster = make_cluster(topo, mode)
    services = cluster.state.services
    web = sorted(p.name for p in cluster.state.pods.values() if p.namespace == "spread")
    client = lambda argv: in_pod(cluster, "node1-pod1", argv)  # noqa: E731
    url = f"http://{services['spread/web'].cluster_ip}/hostname"
    # kube-proxy's own round-robin: nine connections, three to each endpoint in turn
    seen = [curl(client, url)[1] for _ in range(9)]
    assert sorted(seen) == sorted(web * 3), seen
    assert seen[:3] == seen[3:6] == seen[6:]
    # the endpoint sees the proxy (on the node), not the pod
    node1 = cluster.state.nodes["node1"]
    code, out, _ = curl(client, url.replace("hostname", "clientip"))
    assert code == 0 and out.split(":")[0] != pod(cluster, "node1-pod1").ip, out
    sticky = f"http://{services['spread/sticky'].cluster_ip}/hostname"
    assert len({curl(client, sticky)[1] for _ in range(6)}) == 1
    # the node's own connections and a NodePort go through the proxy too
    node_port = services["spread/web"].ports[0].node_port
    code, out, _ = curl(lambda argv: netns.in_node(node1.pid, argv),
                        f"http://{node1.ip}:{node_port}/hostname")
    assert code == 0 and out in web
    # the rules are the old proxier's, pointing at the proxy's ports
    saved = netns.run(netns.in_node(node1.pid, ["iptables-save", "-t", "nat"]))
    assert f"-j DNAT --to-destination {node1.ip}:" in saved and \
        "-A KUBE-PORTALS-CONTAINER -d " in saved and "KUBE-SVC-" not in saved


ZONED = REPO / "docs" / "examples" / "zoned.yaml"  # the page's example


@pytest.mark.parametrize("mode,proxy", [("vxlan", "iptables"), ("bgp", "nftables"),
                                        ("ebpf", "iptables")])
def test_topology_aware_routing_keeps_traffic_in_the_clients_rack(make_cluster, tmp_path,
                                                                   mode, proxy):
    topo = tmp_path / "topo.yaml"
    topo.write_text((TOPO / "two-racks.yaml").read_text() +
                    f"kubeProxy: {{mode: {proxy}}}\nmanifests: [{ZONED}]\n")
    cluster = make_cluster(topo, mode)
    state = cluster.state
    web = {p.name: state.nodes[p.node].rack for p in state.pods.values()
           if p.namespace == "zoned"}
    assert sorted(web.values()) == ["rack1", "rack1", "rack2", "rack2"]  # one per node
    url = f"http://{state.services['zoned/web'].cluster_ip}/hostname"
    for client, rack in (("node1-pod1", "rack1"), ("node4-pod2", "rack2")):
        answered = {curl(lambda argv, c=client: in_pod(cluster, c, argv), url)[1]
                    for _ in range(12)}
        assert answered and {web[name] for name in answered} == {rack}, answered
    # the hints are in the EndpointSlice, as kubectl shows it
    out = run_testbed("get", "endpointslices", "-n", "zoned", "-o", "json", "--name",
                      cluster.spec.name, check=True).stdout
    (slice_,) = json.loads(out)["items"]
    assert sorted(ep["hints"]["forZones"][0]["name"] for ep in slice_["endpoints"]) == \
        ["rack1", "rack1", "rack2", "rack2"]
