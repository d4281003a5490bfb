"""Services in a dual-stack cluster, driven with kubectl as upstream's e2e dual_stack.go drives
them: ipFamilyPolicy defaulted by the API server, a RequireDualStack Service reachable on both
ClusterIPs and both NodePorts, a SingleStack IPv6 Service, EndpointSlices per address type,
kube-proxy's IPv6 rules (ip6tables, or `table ip6 kube-proxy` in the nftables mode), and DNS
answering AAAA."""
import ipaddress
import json
import os
import subprocess
import sys

import pytest

from testbed.host import netns
from testbed.host.waiting import wait_until
from testbed.kubeproxy.modes import get_proxy_mode
from testbed.lifecycle import doctor
from testbed.model.state import RunState, run_dir_for
from testbed.modes import get_mode

from .conftest import TOPO, Footprint, run_testbed, unique_name

KUBECTL = os.path.join(os.path.dirname(sys.executable), "kubectl")

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.45
        args: ["netexec", "--http-port=8080"]
"""

MANIFEST = WEB + """---
apiVersion: v1
kind: Service
metadata: {name: dual}
spec:
  type: NodePort
  ipFamilyPolicy: RequireDualStack
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: six}
spec:
  ipFamilies: [IPv6]
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: prefer}
spec:
  ipFamilyPolicy: PreferDualStack
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: plain}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


# (mode, kube-proxy's mode): every mode that builds dual-stack, and kube-proxy's modes with
# IPv6 (ipvs where the kernel has IPVS: the VM); host-gw on one rack, as it must be; ebpf
# replaces kube-proxy ("bpf")
CASES = [("vxlan", "iptables"), ("vxlan", "nftables"), ("vxlan", "ipvs"),
         ("host-gw", "iptables"), ("bgp", "iptables"), ("openflow", "iptables"),
         ("ebpf", "bpf")]


def kubectl_cluster(tmp_path_factory, caps, mode, family, manifest, proxy_mode="bpf",
                    topology="two-racks.yaml", ready=("deploy/web",)):
    """A cluster up in the background (`testbed up --no-cli`) with `manifest` applied by
    kubectl and `ready` objects waited for: yields (name, kubeconfig); down and checked gone
    after."""
    missing = doctor.missing_for(get_mode(mode).requires, caps)
    if proxy_mode != "bpf":  # "bpf": the mode's own Services, or kube-proxy's default
        missing += doctor.missing_for(tuple(get_proxy_mode(proxy_mode).needs), caps)
    if missing or not os.access(KUBECTL, os.X_OK):
        pytest.skip(f"needs {', '.join(missing) or 'kubectl in the venv'}")
    before, name = Footprint(), unique_name()
    chosen = ["--proxy-mode", proxy_mode] if proxy_mode != "bpf" else []
    run_testbed("up", "--topo", TOPO / topology, "--mode", mode, "--ip-family", family,
                *chosen, "--no-cli", "--name", name, check=True)
    config = tmp_path_factory.mktemp("kube") / "config"
    try:
        config.write_text(run_testbed("kubeconfig", "--name", name, check=True).stdout)
        path = tmp_path_factory.mktemp("manifests") / "manifest.yaml"
        path.write_text(manifest)
        kubectl((name, str(config)), "apply", "-f", str(path))
        for what in ready:
            condition = "Available" if what.startswith("deploy/") else "Ready"
            kubectl((name, str(config)), "wait", f"--for=condition={condition}", what,
                    "--timeout=60s")
        yield name, str(config)
        pids = RunState.load(run_dir_for(name)).owned.pids
    finally:
        down = run_testbed("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert Footprint().leftovers(before, pids) == []


@pytest.fixture(scope="module", params=CASES, ids=["-".join(case) for case in CASES])
def cluster(request, tmp_path_factory, caps):
    mode, proxy_mode = request.param
    topology = "default.yaml" if mode == "host-gw" else "two-racks.yaml"
    for name, config in kubectl_cluster(tmp_path_factory, caps, mode, "dual", MANIFEST,
                                        proxy_mode, topology):
        yield name, config, proxy_mode


def kubectl(cluster, *args):
    proc = subprocess.run([KUBECTL, "--kubeconfig", cluster[1], *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def spec_of(cluster, name):
    return json.loads(kubectl(cluster, "get", "svc", name, "-o", "json"))["spec"]


def answers(cluster, pod, url):
    """The body a pod gets from `url` (curl, 3 s), "" when nothing answers."""
    sandbox = f"{pod}.default.{cluster[0]}"
    proc = subprocess.run(netns.in_pod(sandbox, ["curl", "-s", "-m", "3", url]),
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def bracket(ip):
    return f"[{ip}]" if ":" in ip else ip


def test_the_api_server_defaults_ip_families_and_policy(cluster):
    fields = {name: (spec_of(cluster, name)["ipFamilies"], spec_of(cluster, name)[
        "ipFamilyPolicy"], len(spec_of(cluster, name)["clusterIPs"]))
        for name in ("dual", "six", "prefer", "plain", "kubernetes")}
    assert fields == {
        "dual": (["IPv4", "IPv6"], "RequireDualStack", 2),
        "six": (["IPv6"], "SingleStack", 1),
        "prefer": (["IPv4", "IPv6"], "PreferDualStack", 2),
        "plain": (["IPv4"], "SingleStack", 1),
        "kubernetes": (["IPv4"], "SingleStack", 1)}
    v4, v6 = (ipaddress.ip_address(ip) for ip in spec_of(cluster, "dual")["clusterIPs"])
    assert v4 in ipaddress.ip_network("10.96.0.0/12")
    assert v6 in ipaddress.ip_network("fd00:10:96::/112")


def test_a_require_dual_stack_service_answers_on_both_cluster_ips_and_node_ports(cluster):
    spec = spec_of(cluster, "dual")
    pods = json.loads(kubectl(cluster, "get", "pods", "-l", "app=web", "-o", "json"))["items"]
    names = {p["metadata"]["name"] for p in pods}
    for pod in pods:  # every backend has an address of each family
        assert [ipaddress.ip_address(ip["ip"]).version for ip in pod["status"]["podIPs"]] == \
            [4, 6]
    node_port = spec["ports"][0]["nodePort"]
    nodes = json.loads(kubectl(cluster, "get", "nodes", "-o", "json"))["items"]
    far = nodes[-1]  # another rack where there are two
    targets = [f"http://{bracket(ip)}/hostname" for ip in spec["clusterIPs"]]
    targets += [f"http://{bracket(a['address'])}:{node_port}/hostname"
                for a in far["status"]["addresses"] if a["type"] == "InternalIP"]
    assert len(targets) == 4
    for url in targets:
        assert wait_until(lambda url=url: answers(cluster, "node1-pod1", url) in names, 10,
                          0.2), url
    # the client's own address arrives over IPv6, as netexec reports it
    client = answers(cluster, "node1-pod1", f"http://[{spec['clusterIPs'][1]}]/clientip")
    assert client.startswith("[fd00:10:244::")


def test_a_dual_stack_load_balancer_has_an_address_of_each_family_announced_by_arp_and_ndp(
        cluster):
    ingress = json.loads(kubectl(cluster, "get", "svc", "lb", "-o", "json"))["status"][
        "loadBalancer"]["ingress"]
    addresses = [entry["ip"] for entry in ingress]
    assert [ipaddress.ip_address(ip).version for ip in addresses] == [4, 6]
    v4, v6 = addresses  # the first rack's pools: the same digits in both families
    assert v6.endswith("::" + v4.rsplit(".", 1)[1])
    state = RunState.load(run_dir_for(cluster[0]))
    if "router" not in state.routers:
        pytest.skip("one rack: no host outside the nodes to reach the addresses from")
    names = {p["metadata"]["name"] for p in json.loads(kubectl(
        cluster, "get", "pods", "-l", "app=web", "-o", "json"))["items"]}
    def from_router(url):
        return run_testbed("exec", "router", "--name", cluster[0], "--", "curl", "-s", "-m",
                           "3", "-g", url).stdout

    for ip in addresses:  # from the router: found by ARP or neighbour discovery on rack1
        url = f"http://{bracket(ip)}/hostname"
        assert wait_until(lambda url=url: from_router(url) in names, 10, 0.2), url


def test_a_single_stack_ipv6_service_answers_on_ipv6_and_resolves_to_aaaa_only(cluster):
    ip = spec_of(cluster, "six")["clusterIP"]
    assert ipaddress.ip_address(ip).version == 6
    sandbox = f"node2-pod2.default.{cluster[0]}"
    dig = subprocess.run(netns.in_pod(sandbox, ["dig", "+short", "six.default.svc.cluster.local",
                                                "AAAA", "six.default.svc.cluster.local", "A"]),
                         capture_output=True, text=True, check=True).stdout.split()
    assert dig == [ip]
    assert answers(cluster, "node2-pod2", "http://six/hostname").startswith("web-")


def test_endpoint_slices_per_address_type_and_kube_proxy_s_ipv6_rules(cluster):
    slices = json.loads(kubectl(cluster, "get", "endpointslices", "-l",
                                "kubernetes.io/service-name=dual", "-o", "json"))["items"]
    assert sorted(s["addressType"] for s in slices) == ["IPv4", "IPv6"]
    for s in slices:
        assert all(ipaddress.ip_address(e["addresses"][0]).version ==
                   (6 if s["addressType"] == "IPv6" else 4) for e in s["endpoints"])
    v6 = spec_of(cluster, "dual")["clusterIPs"][1]
    node2 = f"node2.{cluster[0]}"
    if cluster[2] == "iptables":
        saved = subprocess.run(netns.in_pod(node2, ["ip6tables-save", "-t", "nat"]),
                               capture_output=True, text=True, check=True).stdout
        assert f"-A KUBE-SERVICES -d {v6}/128 -p tcp -m tcp --dport 80" in saved
        assert "-j DNAT --to-destination [fd00:10:244:" in saved
    elif cluster[2] == "ipvs":  # kube-proxy's KUBE-6-* sets and IPv6 virtual servers
        listed = subprocess.run(netns.in_pod(node2, ["ipset", "list", "KUBE-6-CLUSTER-IP"]),
                                capture_output=True, text=True, check=True).stdout
        assert f"{v6},tcp:80" in listed
        servers = subprocess.run(netns.in_pod(node2, ["ipvsadm", "-Ln"]),
                                 capture_output=True, text=True, check=True).stdout
        assert f"TCP  [{v6}]:80 rr" in servers and "-> [fd00:10:244:" in servers
    elif cluster[2] == "bpf":  # Cilium's IPv6 service maps, kube-proxy replaced
        shown = run_testbed("bpf", "node2", "--name", cluster[0], check=True).stdout
        v6_maps = shown[shown.index("# services (cilium_lb6_services_v2"):]
        frontend = next(line for line in v6_maps.splitlines() if line.startswith(f"[{v6}]:80"))
        assert "default/dual" in frontend and "[fd00:10:244:" in frontend
    else:
        listed = subprocess.run(netns.in_pod(node2, ["nft", "list", "table", "ip6",
                                                     "kube-proxy"]),
                                capture_output=True, text=True, check=True).stdout
        assert f"{v6} . tcp . 80 : goto service-" in listed
        assert "dnat to [fd00:10:244:" in listed
    agent = "cilium-agent" if cluster[2] == "bpf" else "kube-proxy"
    log = open(os.path.join(run_dir_for(cluster[0]), "nodes", "node2", f"{agent}.log")).read()
    assert f'"Syncing {cluster[2]} rules" ipFamily="IPv6"' in log
