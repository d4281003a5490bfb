"""The guides' Ingress on a real nginx: www.example.com/book and /food to two Services over
HTTPS with the host's certificate, reloaded without dropping a connection, bad Ingresses named
while the rest keeps serving."""
import re
import subprocess
import time

import pytest

from testbed import manifests
from testbed.api import apply
from testbed.host import netns

from .conftest import REPO, TOPO, run_testbed

EXAMPLE = REPO / "docs" / "examples" / "ingress.yaml"
# a request begun before a reload and finished after it: the old worker must answer it
SLOW_CLIENT = """\
import os, socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=10)
s.sendall(b"GET /book HTTP/1.1\\r\\nHost: www.example.com\\r\\n")
print("sent", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
s.sendall(b"Connection: close\\r\\n\\r\\n")
print(s.recv(4096).split(b"\\r\\n")[0].decode(), flush=True)
"""
BAD = """\
apiVersion: v1
kind: Secret
metadata: {name: broken-tls, namespace: shop}
type: kubernetes.io/tls
stringData: {tls.crt: "not a certificate", tls.key: "not a key"}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: late, namespace: shop}
spec:
  tls: [{hosts: [broken.example.com], secretName: broken-tls}]
  rules:
    - host: www.example.com
      http:
        paths:
          - {path: /book, pathType: Prefix, backend: {service: {name: food, port: {number: 80}}}}
    - host: broken.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: gone, port: {number: 80}}}}
"""


@pytest.mark.parametrize("mode", ["vxlan", "bgp"])
def test_the_guides_ingress_over_https(make_cluster, tmp_path, mode):
    topo = tmp_path / "topo.yaml"
    topo.write_text((TOPO / "two-racks.yaml").read_text() + "externalClient: true\n"
                    f"manifests: [{EXAMPLE}]\n")
    cluster = make_cluster(topo, mode)
    state = cluster.state
    client = state.hosts["external"]
    address = state.services["ingress-nginx/ingress-nginx-controller"].load_balancer_ip
    shop = {p.name for p in state.pods.values() if p.namespace == "shop"}

    def external(*argv):
        return netns.run(netns.in_node(client.pid, list(argv)), check=False)

    def get(path, scheme="https"):
        port = 443 if scheme == "https" else 80
        page = external("curl", "-sk", "--max-time", "3", "--resolve",
                        f"www.example.com:{port}:{address}", f"{scheme}://www.example.com{path}")
        found = re.search(r"<p>([-a-z0-9]+)</p>", page)  # the stand-in's page names its pod
        return found.group(1) if found else page

    # each path to its own Service's pods, both of them in turn
    assert {get("/book") for _ in range(6)} == {n for n in shop if n.startswith("book-")}
    assert {get("/food/menu") for _ in range(6)} == {n for n in shop if n.startswith("food-")}
    assert get("/bookshelf") == "default backend - 404\n"  # Prefix matches whole elements
    # the host's certificate, by SNI; another name gets the controller's fake one
    def subject(name):
        return external("sh", "-c", f"openssl s_client -servername {name} -connect "
                        f"{address}:443 </dev/null 2>/dev/null | openssl x509 -noout -subject")
    assert "CN = www.example.com" in subject("www.example.com")
    assert "Kubernetes Ingress Controller Fake Certificate" in subject("other.example.org")
    redirect = external("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                        "--resolve", f"www.example.com:80:{address}",
                        "http://www.example.com/book")
    assert redirect == "308 https://www.example.com/book"
    row = run_testbed("get", "ingress", "-n", "shop", "--name", cluster.spec.name,
                      check=True).stdout.splitlines()[1].split()
    assert row[:3] == ["shop", "nginx", "www.example.com"] and row[3] == address
    assert " ".join(row[4:6]) == "80, 443"
    # trace to the Ingress: the probe's path to the controller, then how nginx routes it
    traced = run_testbed("trace", "external", "shop/ing/shop", "--port", "443", "--name",
                         cluster.spec.name)
    assert traced.returncode == 0, traced.stdout + traced.stderr
    assert "Ingress shop/shop, as nginx routes it now:" in traced.stdout
    book_eps = sorted(f"{p.ip}:80" for p in state.pods.values() if p.name.startswith("book-"))
    assert f"www.example.com location = /book -> upstream shop-book-80: " \
        f"{', '.join(book_eps)}" in traced.stdout
    assert "DELIVERED: delivered to" in traced.stdout and "ingress-nginx-controller" in \
        traced.stdout

    # a reload (book scaled to 3: new endpoints) does not drop a connection under way
    flag = tmp_path / "finish"
    slow = subprocess.Popen(netns.in_node(client.pid, ["python3", "-c", SLOW_CLIENT, address,
                                                      str(flag)]),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert slow.stdout.readline().strip() == "sent"
        text = EXAMPLE.read_text().replace("replicas: 2\n  selector: {matchLabels: {app: book}}",
                                           "replicas: 3\n  selector: {matchLabels: {app: book}}")
        (tmp_path / "scaled.yaml").write_text(text)
        before = open(f"{state.dir}/ingress-nginx/nginx.conf").read()
        apply.apply(cluster, manifests.load(str(tmp_path / "scaled.yaml")))
        assert open(f"{state.dir}/ingress-nginx/nginx.conf").read() != before  # reloaded
        flag.touch()
        assert slow.stdout.readline().strip() == "HTTP/1.1 308 Permanent Redirect"
    finally:
        slow.kill()
        slow.wait()
    books = {p.name for p in state.pods.values() if p.name.startswith("book-")}
    assert len(books) == 3
    deadline = time.monotonic() + 5
    seen = set()
    while seen != books and time.monotonic() < deadline:
        seen.add(get("/book"))
    assert seen == books

    # bad input: named, and the rest keeps serving
    (tmp_path / "bad.yaml").write_text(BAD)
    result = apply.apply(cluster, manifests.load(str(tmp_path / "bad.yaml")))
    said = "\n".join(result.warnings)
    assert "TLS Secret shop/broken-tls: tls.crt and tls.key are not a certificate" in said
    assert "Service shop/gone does not exist (it answers 503)" in said
    assert "Ingress shop/late: www.example.com /book (Prefix) is already Ingress shop/shop's" \
        in said
    assert get("/book") in books  # still the first Ingress's
    assert "503" in external("curl", "-sk", "--resolve", f"broken.example.com:443:{address}",
                             "https://broken.example.com/")
