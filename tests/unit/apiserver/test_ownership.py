"""Field ownership as kube-apiserver keeps it: field sets by the upstream merge keys, FieldsV1,
Updates taking fields from other managers, server-side apply's conflicts and removals."""
import pytest

from testbed.apiserver import ownership
from testbed.apiserver.status import ApiError

DEPLOYMENT = "k8s.io.api.apps.v1.Deployment"


def deployment(replicas=2, image="nginx", env=True, labels=None):
    container = {"name": "web", "image": image}
    if env:
        container["env"] = [{"name": "A", "value": "1"}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": labels or {"app": "d"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [container]}}}}


def test_a_field_set_keys_list_items_by_their_merge_key_and_round_trips_as_fieldsv1():
    paths = ownership.field_set(deployment(), DEPLOYMENT)
    item = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}')
    assert item in paths and item + ("f:image",) in paths
    assert item + ("f:env", 'k:{"name":"A"}', "f:value") in paths
    assert ("f:metadata", "f:labels", "f:app") in paths
    assert ("f:spec", "f:replicas") in paths and ("f:spec",) not in paths
    encoded = ownership.encode(paths)
    containers = encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers['k:{"name":"web"}']["."] == {} and "f:image" in \
        containers['k:{"name":"web"}']
    assert ownership.decode(encoded) == paths
    assert ownership.as_text(item + ("f:image",)) == \
        '.spec.template.spec.containers[name="web"].image'


def test_an_update_takes_the_fields_it_changes_from_their_manager():
    first = ownership.after_update([], "kubectl-create", "apps/v1", {}, deployment(),
                                   DEPLOYMENT)
    assert [(e["manager"], e["operation"]) for e in first] == [("kubectl-create", "Update")]
    scaled = deployment(replicas=5)
    after = ownership.after_update(first, "kubectl-scale", "apps/v1", deployment(), scaled,
                                   DEPLOYMENT)
    sets = {e["manager"]: ownership.decode(e["fieldsV1"]) for e in after}
    assert sets["kubectl-scale"] == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:replicas") not in sets["kubectl-create"]
    # a field that leaves the object is no one's
    bare = deployment(replicas=5, env=False)
    after = ownership.after_update(after, "kubectl-edit", "apps/v1", scaled, bare, DEPLOYMENT)
    assert not any(("f:env" in p) for e in after for p in ownership.decode(e["fieldsV1"]))
    assert "kubectl-edit" not in {e["manager"] for e in after}  # it changed nothing it keeps


def test_apply_conflicts_with_another_managers_value_unless_forced_and_removes_what_it_drops():
    applied = deployment()
    entries = ownership.after_apply([], "kubectl", "apps/v1", {}, applied, applied,
                                    DEPLOYMENT, False)
    live = deployment(replicas=5)
    entries = ownership.after_update(entries, "kubectl-scale", "apps/v1", applied, live,
                                     DEPLOYMENT)
    with pytest.raises(ApiError) as refused:
        ownership.after_apply(entries, "kubectl", "apps/v1", live, deployment(), live,
                              DEPLOYMENT, False)
    assert refused.value.code == 409 and refused.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: '
        ".spec.replicas")
    assert refused.value.details["causes"][0]["field"] == ".spec.replicas"
    # the same value is no conflict: both own it
    same = ownership.after_apply(entries, "kubectl", "apps/v1", live, deployment(replicas=5),
                                 live, DEPLOYMENT, False)
    assert {e["manager"] for e in same} == {"kubectl", "kubectl-scale"}
    forced = ownership.after_apply(entries, "kubectl", "apps/v1", live, deployment(), live,
                                   DEPLOYMENT, True)
    assert all(("f:spec", "f:replicas") not in ownership.decode(e["fieldsV1"])
               for e in forced if e["manager"] == "kubectl-scale")
    # applied again without the env entry and a label: both leave the object
    merged = deployment(replicas=5, labels={"app": "d", "tier": "web"})
    entries = ownership.after_apply([], "kubectl", "apps/v1", {}, merged, merged, DEPLOYMENT,
                                    False)
    smaller = deployment(replicas=5, env=False)
    result = deployment(replicas=5, labels={"app": "d", "tier": "web"})
    ownership.after_apply(entries, "kubectl", "apps/v1", result, smaller, result, DEPLOYMENT,
                          False)
    assert result["metadata"]["labels"] == {"app": "d"}
    assert "env" not in result["spec"]["template"]["spec"]["containers"][0]
