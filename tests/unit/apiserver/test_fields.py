"""Field validation by the kinds' schemas: unknown fields found with their paths, and what
Strict, Warn and Ignore make of them."""
import pytest

from testbed.apiserver import fields
from testbed.apiserver.status import ApiError

POD = {"apiVersion": "v1", "kind": "Pod", "x": 1, "metadata": {
    "name": "p", "labels": {"any-key": "v"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]},
                            {"name": "d", "imagee": "i", "resources": {
                                "limits": {"cpu": "1"}}}],
             "nodeSelectorr": {}}}


def test_unknown_fields_are_found_where_they_are_and_known_ones_pass():
    assert fields.unknown_fields(POD, "v1", "Pod") == [
        "x", "spec.containers[1].imagee", "spec.nodeSelectorr"]
    deploy = {"metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": {
        "matchLabels": {"a": "b"}}, "strategy": {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": "25%"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                "containers": [{"name": "c", "image": "i", "env": [{"name": "A",
                                                                    "valuee": "1"}]}]}}}}
    assert fields.unknown_fields(deploy, "apps/v1", "Deployment") == [
        "spec.template.spec.containers[0].env[0].valuee"]
    cm = {"metadata": {"name": "c"}, "data": {"whatever.key": "v"}, "binaryData": {}}
    assert fields.unknown_fields(cm, "v1", "ConfigMap") == []
    assert fields.unknown_fields({"anything": 1}, "batch/v1", "Job") == []  # no schema


def test_an_embedded_structs_fields_are_its_parents_as_json_inlines_them():
    """Probe inlines ProbeHandler (httpGet), IngressRule inlines IngressRuleValue (http),
    Volume inlines VolumeSource: in JSON they stand beside the parent's own fields."""
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}
    deploy = {"metadata": {"name": "d"}, "spec": {"selector": {}, "template": {"spec": {
        "containers": [{"name": "c", "image": "i", "readinessProbe": probe,
                        "livenessProbe": {**probe, "handler": {}}}],
        "volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}}}
    assert fields.unknown_fields(deploy, "apps/v1", "Deployment") == [
        "spec.template.spec.containers[0].livenessProbe.handler"]
    ingress = {"metadata": {"name": "i"}, "spec": {"rules": [{"host": "a", "http": {
        "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {
            "name": "web", "port": {"number": 80}}}}]}}]}}
    assert fields.unknown_fields(ingress, "networking.k8s.io/v1", "Ingress") == []


def test_strict_refuses_warn_warns_ignore_ignores():
    with pytest.raises(ApiError) as refused:
        fields.check(POD, "v1", "Pod", "Strict")
    assert refused.value.code == 400 and refused.value.message == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown '
        'field "x", unknown field "spec.containers[1].imagee", unknown field '
        '"spec.nodeSelectorr"')
    assert fields.check(POD, "v1", "Pod", "Warn")[0] == '299 - "unknown field \\"x\\""'
    assert fields.check(POD, "v1", "Pod", "Ignore") == []
    with pytest.raises(ApiError) as refused:
        fields.check(POD, "v1", "Pod", "Loose")
    assert "supported values are Ignore, Warn and Strict" in refused.value.message


@pytest.mark.parametrize("change, words", [
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"][0].update(name=True),
     "json: cannot unmarshal bool into Go struct field EnvVar.spec.template.spec.containers.env"
     ".name of type string"),
    (lambda d: d["spec"].update(replicas="3"),
     "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type "
     "int32"),
    (lambda d: d["spec"].update(replicas=1.5),
     "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of "
     "type int32"),
    (lambda d: d["spec"]["template"]["spec"].update(containers={"name": "a"}),
     "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers "
     "of type []v1.Container"),
    (lambda d: d["metadata"].update(labels=["a"]),
     "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type "
     "map[string]string"),
    (lambda d: d["metadata"].update(labels={"a": 1}),
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type "
     "string"),
    (lambda d: d["spec"].update(template="x"),
     "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.template of type "
     "v1.PodTemplateSpec"),
    (lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge=True),
     "json: cannot unmarshal bool into Go value of type int32"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        resources={"limits": {"cpu": "lots"}}),
     "quantities must match the regular expression"),
])
def test_a_value_of_the_wrong_type_is_refused_in_gos_words_whatever_the_mode(change, words):
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                       "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                       "template": {"metadata": {"labels": {"app": "d"}}, "spec": {
                           "containers": [{"name": "c", "image": "nginx",
                                           "env": [{"name": "A", "value": "1"}],
                                           "resources": {"limits": {"cpu": "100m",
                                                                    "memory": "1Gi"}},
                                           "ports": [{"containerPort": 80}]}]}}}}
    assert fields.type_error(deploy, "apps/v1", "Deployment") is None
    assert fields.check(deploy, "apps/v1", "Deployment", "Strict") == []
    change(deploy)
    assert words in fields.type_error(deploy, "apps/v1", "Deployment")
    for mode in ("Strict", "Ignore"):
        with pytest.raises(ApiError) as refused:
            fields.check(deploy, "apps/v1", "Deployment", mode)
        assert refused.value.code == 400
        assert refused.value.message == \
            'Deployment in version "v1" cannot be handled as a Deployment: ' + \
            fields.type_error(deploy, "apps/v1", "Deployment")
