"""The API server's handling of what requests carry, without a server: selectors, patches,
checks and defaults, Tables, discovery, certificates."""
import copy
import json
import ssl

import pytest

from testbed.apiserver import discovery, objects, patch, selectors, tables
from testbed.apiserver.resources import find, of_kind
from testbed.apiserver.status import ApiError
from testbed.auth.pki import make_pki, user_of

PODS = find("", "v1", "pods")


def pod(name="web", **extra):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **extra},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def test_label_selectors_as_the_api_server_reads_them():
    match = selectors.parse_labels("app=web,tier in (a, b),!canary,env!=prod")
    assert match({"app": "web", "tier": "b"})
    assert not match({"app": "web", "tier": "c"})
    assert not match({"app": "web", "tier": "a", "canary": "1"})
    assert not match({"app": "web", "tier": "a", "env": "prod"})
    assert selectors.parse_labels("zone")({"zone": ""}) and \
        not selectors.parse_labels("zone")({})
    assert selectors.parse_labels("tier notin (a)")({"tier": "b"})
    with pytest.raises(selectors.SelectorError, match="unable to parse requirement"):
        selectors.parse_labels("app=web,=x")


def test_field_selectors_only_on_the_fields_a_resource_has():
    obj = {"metadata": {"name": "p"}, "spec": {"nodeName": "node1", "hostNetwork": True},
           "status": {"phase": "Running"}}
    assert selectors.parse_fields("spec.nodeName=node1,status.phase!=Pending", "pods")(obj)
    assert not selectors.parse_fields("spec.nodeName==node2", "pods")(obj)
    assert selectors.parse_fields("spec.hostNetwork=true", "pods")(obj)
    assert selectors.parse_fields("metadata.name=p", "configmaps")(obj)
    with pytest.raises(selectors.SelectorError, match="field label not supported: spec.x"):
        selectors.parse_fields("spec.x=1", "pods")


def test_json_merge_and_json_patch():
    doc = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}}
    assert patch.merge_patch(doc, {"metadata": {"labels": {"a": None, "c": "3"}}}) == {
        "metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 1}}
    out = patch.json_patch(doc, [{"op": "replace", "path": "/spec/replicas", "value": 3},
                                 {"op": "add", "path": "/metadata/labels/d~1e", "value": "4"},
                                 {"op": "remove", "path": "/metadata/labels/a"}])
    assert out == {"metadata": {"labels": {"b": "2", "d/e": "4"}}, "spec": {"replicas": 3}}
    assert doc["spec"]["replicas"] == 1  # the stored object is not touched
    with pytest.raises(patch.PatchError, match="testing value"):
        patch.json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 2}])
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, [{"op": "remove", "path": "/spec/missing"}])


def test_strategic_merge_merges_containers_by_name_and_ports_by_number():
    spec = {"containers": [{"name": "a", "image": "x:1", "ports": [{"containerPort": 80}]},
                           {"name": "b", "image": "y:1"}]}
    out = patch.strategic_merge(spec, {"containers": [
        {"name": "a", "image": "x:2", "ports": [{"containerPort": 443}]},
        {"name": "b", "$patch": "delete"}, {"name": "c", "image": "z"}]})
    assert out == {"containers": [
        {"name": "a", "image": "x:2", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
        {"name": "c", "image": "z"}]}
    # a list without a merge key is replaced, as in a merge patch
    assert patch.strategic_merge({"args": ["1", "2"]}, {"args": ["3"]}) == {"args": ["3"]}


def test_create_sets_server_metadata_and_kube_apiservers_defaults():
    out = objects.prepare_create(PODS, pod(resourceVersion="7", uid="mine"), "default")
    meta = out["metadata"]
    assert meta["namespace"] == "default" and meta["uid"] != "mine"
    assert "resourceVersion" not in meta and meta["creationTimestamp"].endswith("Z")
    assert out["spec"]["restartPolicy"] == "Always" and out["spec"]["dnsPolicy"] == \
        "ClusterFirst"
    assert out["spec"]["containers"][0]["imagePullPolicy"] == "Always"  # no tag: latest
    assert out["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    named = objects.prepare_create(PODS, {**pod(), "metadata": {"generateName": "web-"}}, "d")
    assert named["metadata"]["name"].startswith("web-") and len(named["metadata"]["name"]) == 9


def test_invalid_objects_name_every_field_as_kubectl_prints_them():
    with pytest.raises(ApiError) as e:
        objects.prepare_create(PODS, {"metadata": {"name": "Bad_Name"}, "spec": {
            "containers": [{"name": "c"}, {"name": "c", "image": "x"}]}}, "default")
    err = e.value
    assert err.code == 422 and err.reason == "Invalid"
    assert err.message.startswith('Pod "Bad_Name" is invalid: [metadata.name: Invalid value: '
                                  '"Bad_Name": a lowercase RFC 1123 subdomain')
    fields = [c["field"] for c in err.details["causes"]]
    assert fields == ["metadata.name", "spec.containers[0].image", "spec.containers[1].name"]
    assert [c["reason"] for c in err.details["causes"]] == [
        "FieldValueInvalid", "FieldValueRequired", "FieldValueDuplicate"]
    services = find("", "v1", "services")
    with pytest.raises(ApiError, match="DNS-1035 label"):
        objects.validate(services, {"metadata": {"name": "1svc"}, "spec": {"ports": [
            {"port": 80}]}})


def test_updates_keep_what_the_server_owns_and_refuse_immutable_fields():
    old = objects.prepare_create(PODS, pod(), "default")
    new = copy.deepcopy(old)  # as a client sends it back: what it read, one field changed
    new["spec"]["containers"][0]["image"] = "nginx:2"
    new["status"] = {"phase": "Running"}
    out = objects.prepare_update(PODS, old, new)
    assert out["metadata"]["uid"] == old["metadata"]["uid"]
    assert out["status"] == old["status"]  # the main resource does not change status
    new["spec"]["containers"][0]["name"] = "renamed"
    with pytest.raises(ApiError, match="pod updates may not change fields"):
        objects.prepare_update(PODS, old, new)
    status = objects.prepare_update(PODS, old, {"status": {"phase": "Running"}}, "status")
    assert status["status"] == {"phase": "Running"} and status["spec"] == old["spec"]
    deployments = find("apps", "v1", "deployments")
    deploy = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "1"}},
                                                  "template": {"metadata": {"labels": {
                                                      "a": "1"}}, "spec": pod()["spec"]}}}
    created = objects.prepare_create(deployments, deploy, "default")
    assert created["metadata"]["generation"] == 1
    scaled = objects.prepare_update(deployments, created, {**deploy, "spec": {
        **deploy["spec"], "replicas": 3}})
    assert scaled["metadata"]["generation"] == 2


def test_tables_carry_kube_apiservers_columns():
    p = objects.prepare_create(PODS, pod(), "default")
    p["status"].update(podIP="10.244.1.2", phase="Running",
                       containerStatuses=[{"name": "c", "ready": True, "restartCount": 1}])
    p["spec"]["nodeName"] = "node1"
    t = tables.table("pods", [p], {"resourceVersion": "5"})
    assert [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    assert t["rows"][0]["cells"][:4] == ["web", "1/1", "Running", "1"]
    assert t["rows"][0]["cells"][5:7] == ["10.244.1.2", "node1"]
    assert t["rows"][0]["object"]["metadata"]["name"] == "web"
    generic = tables.table("configmaps.x", [{"metadata": {
        "name": "s", "creationTimestamp": "2026-01-01T00:00:00Z"}}])
    assert [c["name"] for c in generic["columnDefinitions"]] == ["Name", "Created At"]
    ing = {"metadata": {"name": "shop"}, "spec": {
        "ingressClassName": "nginx", "tls": [{"hosts": ["a"]}],
        "rules": [{"host": "a.example"}, {"host": "b.example"}, {}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.241"}]}}}
    assert tables.table("ingresses", [ing])["rows"][0]["cells"][:5] == [
        "shop", "nginx", "a.example,b.example", "192.168.1.241", "80, 443"]
    policy = {"metadata": {"name": "p"}, "spec": {"podSelector": {"matchLabels": {"app": "w"}}}}
    assert tables.table("networkpolicies", [policy])["rows"][0]["cells"][:2] == ["p", "app=w"]
    secret = {"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"a": "", "b": ""}}
    assert tables.table("secrets", [secret])["rows"][0]["cells"][:3] == [
        "t", "kubernetes.io/tls", 2]


@pytest.mark.parametrize("status, columns", [
    ({"phase": "Running", "containerStatuses": [
        {"ready": True, "restartCount": 2, "state": {"running": {}}},
        {"ready": False, "restartCount": 0, "state": {"terminated": {"reason": "Error"}}}]},
     ("1/2", "Error", "2")),
    ({"phase": "Pending", "containerStatuses": [
        {"ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}]},
     ("0/2", "ContainerCreating", "0")),
    ({"phase": "Running", "containerStatuses": [
        {"ready": False, "state": {"terminated": {"exitCode": 3}}}]}, ("0/2", "ExitCode:3", "0")),
    ({"phase": "Pending"}, ("0/2", "Pending", "0")),
])
def test_a_pods_ready_status_and_restarts_as_kubectl_derives_them(status, columns):
    from testbed.api.objects import pod_columns
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": status}
    assert pod_columns(pod) == columns
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_columns(pod)[1] == "Terminating"


def test_discovery_lists_every_resource_and_its_subresources():
    core = discovery.resource_list("", "v1")
    names = {r["name"] for r in core["resources"]}
    assert {"pods", "pods/log", "pods/exec", "services", "namespaces", "nodes"} <= names
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["shortNames"] == ["po"] and pods["namespaced"] and "watch" in pods["verbs"]
    groups = {g["name"] for g in discovery.api_group_list()["groups"]}
    assert groups == {"apps", "networking.k8s.io", "discovery.k8s.io"}
    assert discovery.resource_list("apps", "v2") is None
    assert of_kind("apps/v1", "Deployment").key("ns", "d") == "/registry/deployments/ns/d"
    assert find("", "v1", "services").key("ns", "s") == "/registry/services/specs/ns/s"
    assert find("", "v1", "nodes").key(None, "n") == "/registry/minions/n"


def test_the_cluster_ca_signs_a_server_and_an_admin_certificate(tmp_path):
    pki = make_pki(str(tmp_path / "pki"), ["kubernetes", "localhost"], ["127.0.0.1"])
    assert oct((tmp_path / "pki" / "admin.key").stat().st_mode & 0o777) == "0o600"
    context = ssl.create_default_context(cafile=pki.ca_cert)
    context.load_cert_chain(pki.admin_cert, pki.admin_key)  # the key matches the certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    cert = ssl._ssl._test_decode_cert(pki.admin_cert)
    assert user_of(cert) == ("kubernetes-admin", ["system:masters"])
    sans = ssl._ssl._test_decode_cert(pki.server_cert)["subjectAltName"]
    assert ("DNS", "kubernetes") in sans and ("IP Address", "127.0.0.1") in sans
    assert user_of(None) is None


def test_openapi_tells_kubectl_that_the_server_validates_fields():
    from testbed.apiserver import openapi
    root = openapi.root()["paths"]
    assert root["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")
    assert "apis/apps/v1" in root
    doc = openapi.document(openapi.group_version_of("apis/apps/v1"))
    patch_op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch_op["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1",
                                                           "kind": "Deployment"}
    assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}} in \
        patch_op["parameters"]
    assert "/api/v1/namespaces/{name}" in openapi.document("v1")["paths"]
    assert openapi.document(openapi.group_version_of("apis/nope/v1")) is None
    assert openapi.group_version_of("version") is None


def test_openapi_schemas_carry_what_explain_and_apply_read():
    from testbed.apiserver import openapi
    schemas = openapi.document("v1")["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod",
                                                      "version": "v1"}]
    assert pod["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    assert "Attributes" not in pod["description"] and "containers" in pod["description"]
    spec = schemas["io.k8s.api.core.v1.PodSpec"]
    assert "containers" in spec["required"]
    containers = spec["properties"]["containers"]
    assert (containers["x-kubernetes-patch-strategy"],
            containers["x-kubernetes-patch-merge-key"]) == ("merge", "name")
    assert spec["properties"]["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert "x-kubernetes-patch-strategy" not in spec["properties"]["nodeSelector"]
    port = schemas["io.k8s.api.core.v1.ServicePort"]["properties"]
    assert port["targetPort"] == {
        "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr."
                            "IntOrString"}], "description": port["targetPort"]["description"]}
    assert port["port"]["format"] == "int32"
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == \
        "int-or-string"
    # a probe's handler is inlined into the probe in JSON, as in the client's model
    assert "httpGet" in schemas["io.k8s.api.core.v1.Probe"]["properties"]
    events = openapi.document("v1")["components"]["schemas"]["io.k8s.api.core.v1.Event"]
    assert events["x-kubernetes-group-version-kind"][0]["kind"] == "Event"
    apps = openapi.document("apps/v1")["components"]["schemas"]
    strategy = apps["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    body, digest = openapi.serialized("apps/v1")
    assert json.loads(body)["components"]["schemas"] == apps and len(digest) == 128
