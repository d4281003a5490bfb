"""NetworkPolicy enforced per pod, as Calico does (bgp) and as Canal adds it to flannel
(vxlan with networkPolicy.enforce): the examples of Kubernetes' documentation, every allowed
and every denied connection tried over TCP and UDP."""
from pathlib import Path

import pytest

from testbed import manifests
from testbed.api import apply
from testbed.host import netns

from .conftest import TOPO, run_testbed

# TCP: connect and read the answer; UDP: a datagram and its answer. Prints ok or no.
PROBE = """\
import socket, sys
ip, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    if proto == "tcp":
        s = socket.create_connection((ip, port), timeout=1)
        s.sendall(b"GET /hostname HTTP/1.0\\r\\n\\r\\n")
        ok = bool(s.recv(100))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.sendto(b"hostname", (ip, port))
        ok = bool(s.recv(100))
except OSError:
    ok = False
print("ok" if ok else "no")
"""

PODS = """\
apiVersion: v1
kind: Namespace
metadata: {name: myproject, labels: {project: myproject}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {role: db}}
spec:
  nodeName: node1
  containers:
  - {name: redis, image: registry.k8s.io/e2e-test-images/agnhost:2.47,
     args: [netexec, --http-port=6379, --udp-port=6379]}
  - {name: admin, image: registry.k8s.io/e2e-test-images/agnhost:2.47,
     args: [netexec, --http-port=8080]}
---
apiVersion: v1
kind: Pod
metadata: {name: sink, labels: {app: sink}}
spec:
  nodeName: node2
  containers:
  - {name: api, image: registry.k8s.io/e2e-test-images/agnhost:2.47,
     args: [netexec, --http-port=5978, --udp-port=5978]}
  - {name: other, image: registry.k8s.io/e2e-test-images/agnhost:2.47,
     args: [netexec, --http-port=5979]}
---
apiVersion: v1
kind: Pod
metadata: {name: near}
spec:
  nodeName: node1
  containers:
  - {name: api, image: registry.k8s.io/e2e-test-images/agnhost:2.47,
     args: [netexec, --http-port=5978]}
"""
CLIENTS = [  # name, namespace, labels, node
    ("frontend", "default", "{role: frontend}", "node2"),
    ("outsider", "default", "{}", "node2"),
    ("mp-client", "myproject", "{}", "node2"),
    ("stranger", "other", "{role: frontend}", "node2"),
]

# Kubernetes' documented example; its ipBlock covers the pod CIDR except node2's pod subnet,
# its egress block is node2's pod subnet
DOCS_EXAMPLE = (Path(__file__).parents[1] / "unit" / "data" /
                "network-policy-docs-example.yaml").read_text()


def client(name, namespace, labels, node):
    return (f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, "
            f"labels: {labels}}}\nspec:\n  nodeName: {node}\n  containers:\n"
            "  - {name: shell, image: busybox}\n")


def by_name(data, name):
    """The record of the pod of that name (the names here are unique across namespaces)."""
    return next(rec for rec in data.pods.values() if rec.name == name)


def probe(cluster, src, dst, port, proto="tcp"):
    data = cluster.state
    ip = by_name(data, dst).ip
    if src in data.nodes:
        argv = netns.in_node(data.nodes[src].pid, ["python3", "-c", PROBE, ip, port, proto])
    else:
        argv = netns.in_pod(by_name(data, src).netns, ["python3", "-c", PROBE, ip, port,
                                                          proto])
    return netns.run(argv).strip() == "ok"


def apply_text(cluster, tmp_path, text, name="m.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return apply.apply(cluster, manifests.load(str(path)))


@pytest.fixture(params=["bgp", "vxlan"])
def policed(request, make_cluster, tmp_path):
    """A cluster enforcing NetworkPolicy with the pods above: bgp as Calico, vxlan as Canal."""
    topo = tmp_path / "policed.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "networkPolicy: {enforce: true}\n")
    cluster = make_cluster(topo, request.param)
    apply_text(cluster, tmp_path, PODS + "".join(client(*c) for c in CLIENTS), "pods.yaml")
    return cluster


def node2_subnet(cluster):
    return cluster.state.nodes["node2"].lease


def test_the_documentation_example_admits_exactly_what_it_says(policed, tmp_path):
    cluster = policed
    everyone = ["frontend", "outsider", "mp-client", "stranger", "near", "node1"]
    before = {src: probe(cluster, src, "db", 6379) for src in everyone}
    assert all(before.values()), before  # nothing isolated yet
    apply_text(cluster, tmp_path, DOCS_EXAMPLE.replace("EXCEPT_CIDR", node2_subnet(cluster))
               .replace("EGRESS_CIDR", node2_subnet(cluster)))

    expected = {  # (source, port, protocol) -> allowed
        ("frontend", 6379, "tcp"): True,    # podSelector role=frontend
        ("mp-client", 6379, "tcp"): True,   # namespaceSelector project=myproject
        ("near", 6379, "tcp"): True,        # ipBlock, node1's pods are not excepted
        ("outsider", 6379, "tcp"): False,   # node2's pods are excepted, and no label
        ("stranger", 6379, "tcp"): False,   # role=frontend but in another namespace
        ("frontend", 8080, "tcp"): False,   # a port the policy does not name
        ("frontend", 6379, "udp"): False,   # TCP only
        ("mp-client", 6379, "udp"): False,
        ("node1", 6379, "tcp"): True,       # the pod's own node, always
        ("node1", 8080, "tcp"): True,
        ("node1", 6379, "udp"): True,
    }
    got = {key: probe(cluster, key[0], "db", key[1], key[2]) for key in expected}
    assert got == expected
    egress = {  # db -> (destination, port, protocol)
        ("sink", 5978, "tcp"): True,    # the egress block and port
        ("sink", 5979, "tcp"): False,   # another port
        ("sink", 5978, "udp"): False,   # TCP only
        ("near", 5978, "tcp"): False,   # outside the block
    }
    assert {key: probe(cluster, "db", *key) for key in egress} == egress
    # others are not selected: not isolated, both ways
    assert probe(cluster, "outsider", "sink", 5979) and probe(cluster, "stranger", "near", 5978)

    # a pod's labels change: frontend loses its role, then gets it back
    relabel = client("frontend", "default", "{role: backend}", "node2")
    apply_text(cluster, tmp_path, relabel)
    assert not probe(cluster, "frontend", "db", 6379)
    apply_text(cluster, tmp_path, relabel.replace("backend", "frontend"))
    assert probe(cluster, "frontend", "db", 6379)
    # a namespace's labels change
    apply_text(cluster, tmp_path, "apiVersion: v1\nkind: Namespace\nmetadata: {name: myproject}\n")
    assert not probe(cluster, "mp-client", "db", 6379)

    # the policy outlives a restart of the pod it protects (new address, same rules)
    db_only = "---".join(d for d in PODS.split("---") if "name: db" in d)
    apply.delete(cluster, manifests.parse(db_only))
    apply_text(cluster, tmp_path, db_only)
    assert probe(cluster, "frontend", "db", 6379) and not probe(cluster, "outsider", "db", 6379)
    assert not probe(cluster, "frontend", "db", 8080)

    explained = run_testbed("policy", "check", "outsider", "db", "6379", "--name",
                            cluster.spec.name)
    assert explained.returncode == 1 and "DENIED" in explained.stdout
    assert "isolated by test-network-policy" in explained.stdout


DENY_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""
ALLOW_ALL_INGRESS = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-ingress}
spec:
  podSelector: {}
  ingress: [{}]
"""
DENY_EGRESS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress}
spec:
  podSelector: {}
  policyTypes: [Egress]
"""
ALLOW_ALL_EGRESS = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-egress}
spec:
  podSelector: {}
  egress: [{}]
  policyTypes: [Egress]
"""
DENY_ALL = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"""


def test_default_deny_and_allow_all(policed, tmp_path):
    cluster = policed
    apply_text(cluster, tmp_path, DENY_INGRESS)
    for proto in ("tcp", "udp"):
        assert not probe(cluster, "frontend", "db", 6379, proto)
        assert not probe(cluster, "mp-client", "sink", 5978, proto)  # from another namespace
    assert probe(cluster, "node2", "sink", 5978)  # own node
    apply_text(cluster, tmp_path, DENY_INGRESS + ALLOW_ALL_INGRESS)
    assert probe(cluster, "frontend", "db", 6379, "udp") and probe(cluster, "stranger", "db", 6379)
    apply.delete(cluster, manifests.parse(DENY_INGRESS + ALLOW_ALL_INGRESS))
    apply_text(cluster, tmp_path, DENY_EGRESS)
    for proto in ("tcp", "udp"):
        assert not probe(cluster, "db", "sink", 5978, proto)     # default's pods send nothing
        assert probe(cluster, "mp-client", "sink", 5978, proto)  # other namespaces do
    apply_text(cluster, tmp_path, DENY_EGRESS + ALLOW_ALL_EGRESS)
    assert probe(cluster, "db", "sink", 5978, "udp") and probe(cluster, "frontend", "near", 5978)
    apply.delete(cluster, manifests.parse(DENY_EGRESS + ALLOW_ALL_EGRESS))
    apply_text(cluster, tmp_path, DENY_ALL)
    for proto in ("tcp", "udp"):
        assert not probe(cluster, "db", "sink", 5978, proto)          # out of default
        assert not probe(cluster, "mp-client", "db", 6379, proto)     # into default
    assert probe(cluster, "node1", "db", 6379)  # own node still
    rows = run_testbed("get", "netpol", "-o", "wide", "--name", cluster.spec.name,
                       check=True).stdout
    assert "default-deny-all" in rows and rows.splitlines()[1].split()[-1] == "yes"


def test_flannel_alone_enforces_nothing_and_says_so(make_cluster, tmp_path):
    cluster = make_cluster("default.yaml", "vxlan")
    apply_text(cluster, tmp_path, PODS + client(*CLIENTS[1]))
    apply_text(cluster, tmp_path, DENY_INGRESS)
    assert probe(cluster, "outsider", "db", 6379)  # stored, not enforced, as with flannel
    out = run_testbed("get", "netpol", "--name", cluster.spec.name, check=True).stdout
    assert "# not enforced in this cluster: flannel enforces no NetworkPolicy" in out
