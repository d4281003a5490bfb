"""What a pod finds for name resolution and service discovery, in real pods: each dnsPolicy's
resolv.conf, a hostname under a headless Service, the Services' environment variables, and
the API server's Service (examples from Kubernetes' "DNS for Services and Pods" page)."""
import pytest

from testbed.host import netns

from .conftest import TOPO, in_pod

SERVICES = """\
apiVersion: v1
kind: Namespace
metadata: {name: dns}
---
apiVersion: v1
kind: Service
metadata: {name: busybox-subdomain, namespace: dns}
spec:
  selector: {name: busybox}
  clusterIP: None
  ports: [{name: foo, port: 1234}]
---
apiVersion: v1
kind: Service
metadata: {name: web-front, namespace: dns}
spec:
  selector: {name: nothing}
  ports: [{name: http, port: 80}, {name: dns-udp, port: 53, protocol: UDP}]
"""


def pod(name, spec):
    return f"""\
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: dns, labels: {{name: busybox}}}}
spec:
  containers:
    - name: busybox
      image: busybox:1.28
      command: [sleep, "3600"]
{spec}"""


PODS = pod("dns-example", """\
  dnsPolicy: "None"
  dnsConfig:
    nameservers: [192.0.2.1]
    searches: [ns1.svc.cluster-domain.example, my.dns.search.suffix]
    options: [{name: ndots, value: "2"}, {name: edns0}]
""") + pod("busybox1", """\
  hostname: busybox-1
  subdomain: busybox-subdomain
""") + pod("host-dns", """\
  dnsPolicy: Default
  enableServiceLinks: false
""") + pod("with-host-net", """\
  dnsPolicy: ClusterFirstWithHostNet
""") + pod("host-net-cluster", """\
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  nodeName: node1
""") + pod("host-net-plain", """\
  hostNetwork: true
  nodeName: node1
""")


@pytest.mark.parametrize("mode", ["vxlan", "bgp"])
def test_dns_policies_hostnames_and_service_links(make_cluster, tmp_path, mode):
    (tmp_path / "services.yaml").write_text(SERVICES)
    (tmp_path / "pods.yaml").write_text("apiVersion: v1\nkind: Namespace\n"
                                        "metadata: {name: dns}\n" + PODS)
    topo = tmp_path / "topo.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() +
                    "manifests: [services.yaml, pods.yaml]\n")
    cluster = make_cluster(topo, mode)
    state = cluster.state

    def run(name, *argv, namespace="dns"):
        return netns.run(in_pod(cluster, name, argv, namespace), check=False)

    def resolv(name):
        return run(name, "cat", "/etc/resolv.conf")

    # the page's dnsConfig example, word for word
    assert resolv("dns-example") == ("search ns1.svc.cluster-domain.example "
                                     "my.dns.search.suffix\nnameserver 192.0.2.1\n"
                                     "options ndots:2 edns0\n")
    cluster_first = ("search dns.svc.cluster.local svc.cluster.local cluster.local\n"
                     "nameserver 10.96.0.10\noptions ndots:5\n")
    assert resolv("busybox1") == cluster_first
    assert resolv("with-host-net") == cluster_first  # no hostNetwork: as ClusterFirst
    # hostNetwork pods share node1's network namespace, each with its own resolv.conf: cluster
    # DNS only when asked for with ClusterFirstWithHostNet, else the node's
    node1 = state.nodes["node1"]
    assert state.pods["dns/host-net-cluster"].ip == node1.ip
    assert f"inet {node1.ip}/" in run("host-net-cluster", "ip", "-4", "addr", "show")
    assert resolv("host-net-cluster") == cluster_first
    assert resolv("host-net-plain") == "nameserver 192.168.1.1\n"
    assert run("host-net-cluster", "getent", "hosts", "web-front").split()[0] == \
        state.services["dns/web-front"].cluster_ip
    # Default: the emulated node's resolv.conf (its rack's gateway), not this machine's
    node = state.pods["dns/host-dns"].node
    assert resolv("host-dns") == "nameserver 192.168.1.1\n"
    with open(f"{state.dir}/nodes/{node}/resolv.conf") as f:
        assert f.read() == "nameserver 192.168.1.1\n"

    # hostname and subdomain: the A record the page promises, and the headless endpoint's
    ip = state.pods["dns/busybox1"].ip
    fqdn = "busybox-1.busybox-subdomain.dns.svc.cluster.local"
    assert run("busybox1", "dig", "+short", fqdn).strip() == ip
    assert run("busybox1", "dig", "+short", "-x", ip).strip() == fqdn + "."

    # Services' environment variables, in containers started after the Services
    def environ(name):
        pid = state.pods[f"dns/{name}"].containers["busybox"].pid
        with open(f"/proc/{pid}/environ", "rb") as f:
            return dict(item.split("=", 1) for item in f.read().decode().split("\0") if item)

    env = environ("busybox1")
    front = state.services["dns/web-front"].cluster_ip
    assert env["WEB_FRONT_SERVICE_HOST"] == front and env["WEB_FRONT_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_FRONT_PORT_53_UDP"] == f"udp://{front}:53"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert "BUSYBOX_SUBDOMAIN_SERVICE_HOST" not in env  # headless
    off = environ("host-dns")  # enableServiceLinks: false
    assert "WEB_FRONT_SERVICE_HOST" not in off and off["KUBERNETES_SERVICE_PORT"] == "443"

    # kubernetes.default: the API server's Service resolves; with no API server behind it,
    # a connection is refused at once
    assert run("busybox1", "getent", "hosts", "kubernetes.default").split()[0] == "10.96.0.1"
    proc = run("busybox1", "sh", "-c", "curl -sk --max-time 3 https://kubernetes.default/; "
               "echo $?")
    assert proc.strip() == "7"

    # deleting a hostNetwork pod ends its containers and its name, not its node
    from testbed import manifests
    from testbed.api import apply
    (tmp_path / "gone.yaml").write_text(pod("host-net-plain", "  hostNetwork: true\n"
                                             "  nodeName: node1\n"))
    apply.delete(cluster, manifests.load(str(tmp_path / "gone.yaml")))
    assert "dns/host-net-plain" not in state.pods
    assert run("host-net-cluster", "ip", "-4", "addr", "show").count(node1.ip) == 1
    assert "busybox-1" in run("host-net-cluster", "dig", "+short", "-x", ip)
    assert all(d.alive for d in cluster.check_daemons().values())  # BIRD, kube-proxy@…
