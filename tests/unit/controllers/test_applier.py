"""`testbed apply -f` through the API server, against a client that answers as it does:
what is created, merged, left unchanged or refused, and the lines kubectl would print."""
import pytest

from testbed import manifests
from testbed.apiserver.resources import of_kind
from testbed.controllers import applier
from testbed.errors import TestbedError


class FakeApi:
    """Objects by path; a POST or PATCH refused when the object says so."""

    def __init__(self, objects=None):
        self.objects = dict(objects or {})
        self.writes = []

    def get(self, path):
        return self.objects.get(path)

    def request(self, method, path, body=None, content_type="application/json"):
        self.writes.append((method, path.split("?")[0], content_type))
        if (body or {}).get("refuse"):
            return 422, {"reason": "Invalid", "message": body["refuse"]}
        if method == "DELETE":
            return (200, {}) if self.objects.pop(path, None) is not None else \
                (404, {"reason": "NotFound", "message": f'"{path}" not found'})
        return (201 if method == "POST" else 200), body


SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop",
                                                            "labels": {"a": "1"}},
       "spec": {"ports": [{"port": 80}]}}


def test_paths_and_names_as_kubectl_prints_them():
    deploy = of_kind("apps/v1", "Deployment")
    assert deploy.path("shop", "web") == "/apis/apps/v1/namespaces/shop/" \
        "deployments/web"
    assert of_kind("v1", "Namespace").path() == "/api/v1/namespaces"
    assert applier.shown(deploy, "web") == "deployment.apps/web"
    assert applier.shown(of_kind("v1", "Service"), "web") == "service/web"


def test_created_then_unchanged_then_configured():
    api = FakeApi()
    assert applier.apply_one(api, SVC, "f.yaml") == "service/web created"
    assert api.writes[-1][:2] == ("POST", "/api/v1/namespaces/shop/services")
    live = {**SVC, "metadata": {**SVC["metadata"], "resourceVersion": "7", "uid": "u"},
            "spec": {**SVC["spec"], "clusterIP": "10.96.5.5"}, "status": {}}
    api = FakeApi({"/api/v1/namespaces/shop/services/web": live})
    assert applier.apply_one(api, SVC, "f.yaml") == "service/web unchanged"
    assert api.writes == []  # nothing written when the merge changes nothing
    changed = {**SVC, "metadata": {**SVC["metadata"], "labels": {"a": "2"}}}
    assert applier.apply_one(api, changed, "f.yaml") == "service/web configured"
    assert api.writes == [("PATCH", "/api/v1/namespaces/shop/services/web",
                           "application/strategic-merge-patch+json")]


def test_a_refusal_is_kubectls_line():
    with pytest.raises(TestbedError) as refused:
        applier.apply_one(FakeApi(), {**SVC, "refuse": "Service \"web\" is invalid: x"},
                          "f.yaml")
    assert str(refused.value) == 'Error from server (Invalid): error when creating ' \
        '"f.yaml": Service "web" is invalid: x'


def test_what_went_with_its_namespace_is_deleted_too():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    api = FakeApi({"/api/v1/namespaces/shop": ns})
    gone = set()
    assert applier.delete_one(api, ns, "f.yaml", gone) == "namespace/shop deleted"
    assert applier.delete_one(api, SVC, "f.yaml", gone) == "service/web deleted"
    with pytest.raises(TestbedError, match=r"Error from server \(NotFound\): error when "
                                           r'deleting "f.yaml"'):
        applier.delete_one(api, {**SVC, "metadata": {"name": "x", "namespace": "other"}},
                           "f.yaml", gone)


def test_the_reader_keeps_every_document_in_its_order(tmp_path):
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}}}\n" \
          "spec: {{containers: [{{name: c, image: i}}]}}\n"
    (tmp_path / "b.yaml").write_text(pod.format("b") + "---\n---\n" + pod.format("c"))
    (tmp_path / "a.yml").write_text(pod.format("a"))
    assert [(src.rsplit("/", 1)[1], d["metadata"]["name"])
            for src, d in manifests.load(str(tmp_path)).documents] == [
        ("a.yml", "a"), ("b.yaml", "b"), ("b.yaml", "c")]
