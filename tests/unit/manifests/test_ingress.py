"""Ingress, IngressClass and Secret manifests, checked as the API server checks them."""
import base64

import pytest

from testbed import manifests
from testbed.manifests import kinds
from testbed.manifests.kinds import ManifestError

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: shop}
spec:
  rules:
    - host: HOST
      http:
        paths:
          - path: PATH
            pathType: Prefix
            backend:
              service: {name: book, port: PORT}
"""


def ingress(host="www.example.com", path="/book", port="{number: 80}"):
    return INGRESS.replace("HOST", host).replace("PATH", path).replace("PORT", port)


def test_an_ingress_keeps_the_apis_shape():
    (obj,) = manifests.parse(ingress(), "i.yaml").objects
    assert isinstance(obj, kinds.Ingress) and obj.namespace == "shop"
    assert obj.spec == {"rules": [{"host": "www.example.com", "http": {"paths": [
        {"path": "/book", "pathType": "Prefix",
         "backend": {"service": {"name": "book", "port": {"number": 80}}}}]}}]}
    wildcard = manifests.parse(ingress(host="'*.example.com'"), "i.yaml").objects[0]
    assert wildcard.spec["rules"][0]["host"] == "*.example.com"


@pytest.mark.parametrize("text, words", [
    (ingress(path="book"), "spec.rules[0].http.paths[0].path: 'book': must be an absolute path"),
    (ingress(host="'*.*.example.com'"), "spec.rules[0].host: '*.*.example.com' is not a DNS"),
    (ingress(host="10.0.0.1"), "an IP address is not allowed"),
    (ingress(port="{number: 80, name: http}"), "needs exactly one of number or name"),
    (ingress().replace("pathType: Prefix", "pathType: Regex"),
     "pathType: 'Regex' is not one of Exact, Prefix, ImplementationSpecific"),
    (ingress().replace("  rules:", "  nothing: 1\n  rulez:").replace("    - host", "    - h"),
     "either `defaultBackend` or `rules` must be specified"),
])
def test_bad_ingresses_name_the_field(text, words):
    with pytest.raises(ManifestError) as e:
        manifests.parse(text, "i.yaml")
    assert words in str(e.value), str(e.value)


def test_secrets_take_data_and_string_data_and_tls_ones_need_both_keys():
    crt = base64.b64encode(b"CERT").decode()
    text = (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: t, namespace: shop}}\n"
            f"type: kubernetes.io/tls\ndata:\n  tls.crt: {crt}\nstringData:\n  tls.key: KEY\n")
    (secret,) = manifests.parse(text, "s.yaml").objects
    assert secret.type == "kubernetes.io/tls" and secret.data["tls.crt"] == crt
    assert base64.b64decode(secret.data["tls.key"]) == b"KEY"
    with pytest.raises(ManifestError, match=r"data\[tls.key\]: required for a Secret of type"):
        manifests.parse(text.replace("stringData:\n  tls.key: KEY\n", ""), "s.yaml")
    with pytest.raises(ManifestError, match="data.tls.crt: is not base64"):
        manifests.parse(text.replace(crt, "not*base64"), "s.yaml")


def test_an_ingress_class_is_cluster_wide_and_can_be_the_default():
    text = ("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\n"
            "  annotations: {ingressclass.kubernetes.io/is-default-class: 'true'}\n"
            "spec: {controller: k8s.io/ingress-nginx}\n")
    (cls,) = manifests.parse(text, "c.yaml").objects
    assert (cls.name, cls.controller, cls.default) == ("nginx", "k8s.io/ingress-nginx", True)


def test_ingress_nginx_annotations_are_named_as_ignored():
    text = ingress().replace("metadata: {name: shop, namespace: shop}",
                             "metadata:\n  name: shop\n  namespace: shop\n  annotations:\n"
                             "    nginx.ingress.kubernetes.io/rewrite-target: /\n"
                             "    kubernetes.io/description: a shop")
    loaded = manifests.parse(text, "i.yaml")
    assert len(loaded.warnings) == 1 and "metadata.annotations.nginx.ingress.kubernetes.io/" \
        "rewrite-target: not implemented by the testbed's ingress controller" in loaded.warnings[0]
