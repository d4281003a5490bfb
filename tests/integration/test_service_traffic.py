"""Where kube-proxy's rules let Service traffic go, and where they stop it, on real namespaces:
a Service with no endpoints refuses at once, loadBalancerSourceRanges keep other clients out,
externalTrafficPolicy Local keeps the client's address and serves only from nodes with an
endpoint, internalTrafficPolicy Local keeps in-cluster traffic on the client's node."""
import json
import subprocess
import time

import pytest

from testbed.host import netns

from .conftest import TOPO, in_pod

PODS = "".join(f"""\
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: traffic, labels: {{app: {app}}}}}
spec:
  nodeName: {node}
  containers:
    - name: agnhost
      image: registry.k8s.io/e2e-test-images/agnhost:2.47
      args: [netexec, --http-port=8080]
""" for name, app, node in (("web1", "web", "node1"), ("web3", "web", "node3"),
                            ("client1", "client", "node1"), ("client2", "client", "node2")))


def service(name, spec):
    return f"""\
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: traffic}}
spec:
{spec}"""


MANIFEST = "apiVersion: v1\nkind: Namespace\nmetadata: {name: traffic}\n" + PODS + \
    service("nobody", """\
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 8080}]
""") + service("nobody-np", """\
  type: NodePort
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 8080, nodePort: 30090}]
""") + service("local-np", """\
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30091}]
""") + service("node-local", """\
  internalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
""") + service("lb-local", """\
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
""") + service("lb-open", """\
  type: LoadBalancer
  loadBalancerSourceRanges: [192.168.1.0/24]
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
""") + service("lb-closed", """\
  type: LoadBalancer
  loadBalancerSourceRanges: [10.0.0.0/8]
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
""")


def curl(argv_prefix, url, wait=2):
    """(curl's exit code, its output, seconds taken)."""
    started = time.monotonic()
    proc = subprocess.run(argv_prefix(["curl", "-s", "--max-time", str(wait), url]),
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout, time.monotonic() - started


@pytest.mark.parametrize("mode,proxy", [("vxlan", "iptables"), ("bgp", "nftables")])
def test_services_refuse_drop_and_keep_traffic_local_as_kube_proxy_does(
        make_cluster, tmp_path, mode, proxy):
    (tmp_path / "traffic.yaml").write_text(MANIFEST)
    topo = tmp_path / "topo.yaml"
    topo.write_text((TOPO / "two-racks.yaml").read_text() + "externalClient: true\n"
                    f"kubeProxy: {{mode: {proxy}}}\nmanifests: [traffic.yaml]\n")
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
