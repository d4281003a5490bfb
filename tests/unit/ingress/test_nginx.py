"""nginx's configuration for Ingresses, as ingress-nginx renders it: servers per host, paths as
locations, conflicts, backends, TLS."""
from testbed.ingress import nginx


def backend(name, port=80):
    return {"service": {"name": name, "port": {"number": port}}}


def resolve(namespace, b):
    name = b["service"]["name"]
    if name == "missing":
        return nginx.Backend(problem=f"Service {namespace}/missing does not exist")
    if name == "empty":
        return nginx.Backend(f"{namespace}-empty-80", [])
    return nginx.Backend(f"{namespace}-{name}-80", [f"10.244.0.{len(name)}:8080"])


def certificate(namespace, name):
    if name == "bad":
        return None, f"TLS Secret {namespace}/bad: tls.crt and tls.key are not a certificate"
    return (f"/c/{name}.crt", f"/c/{name}.key"), ""


SHOP = {"tls": [{"hosts": ["www.example.com"], "secretName": "www-tls"}],
        "rules": [{"host": "www.example.com", "http": {"paths": [
            {"path": "/book", "pathType": "Prefix", "backend": backend("book")},
            {"path": "/food/", "pathType": "Prefix", "backend": backend("food")},
            {"path": "/exact", "pathType": "Exact", "backend": backend("book")},
            {"path": "/impl", "pathType": "ImplementationSpecific", "backend": backend("food")},
        ]}}]}


def test_paths_become_locations_as_ingress_nginx_makes_them():
    assert nginx.locations_for("/book", "Prefix") == [("=", "/book"), ("", "/book/")]
    assert nginx.locations_for("/food/", "Prefix") == [("=", "/food"), ("", "/food/")]
    assert nginx.locations_for("/", "Prefix") == [("", "/")]
    assert nginx.locations_for("/exact", "Exact") == [("=", "/exact")]
    assert nginx.locations_for("/impl", "ImplementationSpecific") == [("", "/impl")]


def test_a_host_with_tls_gets_its_certificate_a_redirect_and_its_locations():
    p = nginx.plan([("shop/shop", SHOP, 1.0)], resolve, certificate)
    assert p.warnings == []
    server = p.servers["www.example.com"]
    assert server.certificate == ("/c/www-tls.crt", "/c/www-tls.key")
    assert set(server.locations) == {("=", "/book"), ("", "/book/"), ("=", "/food"),
                                     ("", "/food/"), ("=", "/exact"), ("", "/impl")}
    text = nginx.render(p, "/run/x", ("/run/x/fake.crt", "/run/x/fake.key"))
    www = text[text.index("server_name www.example.com;"):]
    www = www[:www.index("\n  }")]
    assert "ssl_certificate /c/www-tls.crt;" in www
    assert "if ($scheme = http) { return 308 https://$host$request_uri; }" in www
    assert "location = /book {\n      proxy_pass http://shop-book-80;" in www
    assert "location / {\n      " + nginx.DEFAULT_404 in www  # no "/" path: default backend
    assert "upstream shop-book-80 {\n    server 10.244.0.4:8080;" in text
    catch_all = text[text.index("server_name _;"):]
    assert "listen 80 default_server;" in text and "ssl_certificate /run/x/fake.crt;" in \
        catch_all[:200]


def test_the_first_ingress_created_wins_a_host_and_path_and_the_other_is_named():
    later = {"rules": [{"host": "www.example.com", "http": {"paths": [
        {"path": "/book", "pathType": "Prefix", "backend": backend("other")}]}}]}
    p = nginx.plan([("shop/later", later, 5.0), ("shop/shop", SHOP, 1.0)], resolve, certificate)
    assert p.servers["www.example.com"].locations[("=", "/book")][1] == "shop/shop"
    assert len(p.warnings) == 2 and all("Ingress shop/later: www.example.com /book (Prefix) "
                                        "is already Ingress shop/shop's" in w
                                        for w in p.warnings)


def test_bad_backends_and_secrets_are_named_and_answer_503_or_the_fake_certificate():
    spec = {"tls": [{"hosts": ["bad.example.com"], "secretName": "bad"}],
            "defaultBackend": backend("book"),
            "rules": [{"host": "bad.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend("missing")},
                {"path": "/none", "pathType": "Exact", "backend": backend("empty")}]}},
                {"http": {"paths": [{"path": "/any", "pathType": "Prefix",
                                     "backend": backend("food")}]}}]}
    p = nginx.plan([("x/bad", spec, 1.0)], resolve, certificate)
    assert any("TLS Secret x/bad: tls.crt and tls.key are not a certificate" in w and
               "fake certificate" in w for w in p.warnings)
    assert any("bad.example.com/: Service x/missing does not exist (it answers 503)" in w
               for w in p.warnings)
    text = nginx.render(p, "/r", ("/r/fake.crt", "/r/fake.key"))
    bad = text[text.index("server_name bad.example.com;"):]
    assert "ssl_certificate /r/fake.crt;" in bad[:200]
    assert "location / {\n      " + nginx.NO_ENDPOINTS in bad
    assert "location = /none {\n      " + nginx.NO_ENDPOINTS in bad
    # the catch-all server: host-less rules and the Ingress's default backend
    catch_all = text[text.index("server_name _;"):text.index("server_name bad")]
    assert "location = /any {" in catch_all and "proxy_pass http://x-book-80;" in catch_all
