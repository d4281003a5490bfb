"""Every pod reaches every other pod and every node, by ping and by TCP, in each mode."""
import subprocess
import time

import pytest

from testbed.host import netns

from .conftest import pod, pod_address

TCP_PORT = 7777


def ping(sandbox, ip):
    """Does one ping from a pod (by its sandbox, the network namespace) get an answer?"""
    return subprocess.run(netns.in_pod(sandbox, ["ping", "-c1", "-W2", ip]),
                          capture_output=True).returncode == 0


def tcp_connects(sandbox, ip, port=TCP_PORT):
    return subprocess.run(netns.in_pod(sandbox, ["nc", "-z", "-w2", ip, str(port)]),
                          capture_output=True).returncode == 0


def start_listeners(sandboxes, family=4):
    procs = [subprocess.Popen(netns.in_pod(p, ["nc", f"-{family}lk", str(TCP_PORT)]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for p in sandboxes]
    deadline = time.monotonic() + 5
    for p in sandboxes:  # wait until each listener is bound
        while time.monotonic() < deadline and f":{TCP_PORT}" not in netns.run(
                netns.in_pod(p, ["ss", "-ltn"])):
            time.sleep(0.02)
    return procs


def full_matrix(state):
    """Every pod to every other pod (ping and TCP) and to every node (ping): the failures."""
    return full_matrix_over(state, family=4)


def full_matrix_over(state, family):
    """full_matrix over the pods' and nodes' addresses of one IP family (4 or 6)."""
    pods = state.pods
    listeners = start_listeners([rec.netns for rec in pods.values()], family)
    try:
        failures = []
        for src, src_rec in pods.items():
            for dst, rec in pods.items():
                if src == dst:
                    continue
                ip = pod_address(rec, family)
                if not ping(src_rec.netns, ip):
                    failures.append(f"ping {src} -> {dst} ({ip})")
                if not tcp_connects(src_rec.netns, ip):
                    failures.append(f"tcp {src} -> {dst} ({ip}:{TCP_PORT})")
            for node, rec in state.nodes.items():
                ip = rec.ip if family == 4 else rec.ip_v6
                if not ping(src_rec.netns, ip):
                    failures.append(f"ping {src} -> node {node} ({ip})")
        return failures
    finally:
        for proc in listeners:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("topo, mode", [
    ("default.yaml", "vxlan"),
    ("default.yaml", "host-gw"),
    ("two-racks.yaml", "vxlan"),
    ("default.yaml", "udp"),
    ("two-racks.yaml", "udp"),
    ("default.yaml", "bgp"),
    ("two-racks.yaml", "bgp"),
    ("route-reflectors.yaml", "bgp"),
    ("default.yaml", "openflow"),
    ("two-racks.yaml", "openflow"),
    ("default.yaml", "ebpf"),  # native routing; tunnel routing: test_ebpf_mode.py
])
def test_every_pod_reaches_every_pod_and_node(make_cluster, topo, mode):
    with_api = topo == "default.yaml"  # and the API server behind default/kubernetes
    cluster = make_cluster(topo, mode, control_plane=with_api)
    assert len(cluster.state.pods) >= 4
    assert full_matrix(cluster.state) == []
    if with_api:
        assert api_server_unreached(cluster) == []


def api_server_unreached(cluster):
    """Pods and nodes from which https://10.96.0.1 (default/kubernetes) does not answer as the
    API server answers a request without credentials: 401 over TLS with the cluster's CA."""
    ca = cluster.control_plane.pki.ca_cert
    curl = ["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca,
            "https://kubernetes.default.svc.cluster.local/api",
            "--resolve", "kubernetes.default.svc.cluster.local:443:10.96.0.1"]
    places = {p.name: netns.in_pod(p.netns, curl) for p in cluster.state.pods.values()}
    nodes = dict(cluster.state.nodes)
    if cluster.state.mode == "ebpf":
        # a node's own connection to a Service whose backend is that node's address needs
        # Cilium's socket load balancing (connect() rewritten), which the mode lacks: the
        # packet path cannot undo the translation of a reply delivered locally
        nodes.pop(cluster.spec.nodes[0].name)  # where the API server listens
    places.update({n: netns.in_node(r.pid, curl) for n, r in nodes.items()})
    answers = {name: subprocess.run(argv, capture_output=True, text=True).stdout
               for name, argv in places.items()}
    return [f"{name}: {code or 'no answer'}" for name, code in answers.items() if code != "401"]


def test_nodes_reach_remote_pods(make_cluster):
    cluster = make_cluster("two-racks.yaml", "vxlan")
    node1 = cluster.nodes["node1"]
    remote = pod(cluster, "node4-pod1").ip
    node1.ns.run("ping", "-c1", "-W2", remote)  # raises CommandError if unreachable


def test_containers_of_a_pod_share_localhost(make_cluster):
    cluster = make_cluster("three-nodes.yaml", "vxlan")
    web = pod(cluster, "web")
    assert set(web.containers) == {"server", "sidecar"}
    inodes = {netns.run(["stat", "-L", "-c", "%i", f"/proc/{c.pid}/ns/net"]).strip()
              for c in web.containers.values()}
    assert len(inodes) == 1, "containers of one pod must share one network namespace"
    assert inodes == {netns.run(["stat", "-L", "-c", "%i", netns.netns_path(web.netns)])
                      .strip()}
    # the server container listens on 127.0.0.1 only: reachable from inside the pod alone
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not tcp_connects(web.netns, "127.0.0.1", 8080):
        time.sleep(0.1)
    assert tcp_connects(web.netns, "127.0.0.1", 8080)
    assert not tcp_connects(pod(cluster, "node1-pod1").netns, web.ip, 8080)
