"""Deployments between the API and the nodes, as the Deployment and ReplicaSet controllers
keep them:

- a Deployment created or changed through the API (kubectl create deployment, apply -f,
  scale, set image) is carried into the cluster, which starts, stops or replaces its pods
  (`<deployment>-<template hash>-<5 chars>`, spread over the nodes with the fewest pods);
  a pod of it deleted through the API is replaced;
- its ReplicaSet is written into the API, and both objects' status (replicas, ready,
  updated, available, observedGeneration, the Available and Progressing conditions), so that
  `kubectl get deploy`, `rollout status` and `wait` read what the nodes run;
- deleted through the API, its pods go;
- the cluster's own Deployments (those `testbed apply -f` made) are written into the API.
"""
import json
import time

from testbed.api.apply import Applying
from testbed.api.objects import timestamp
from testbed.model.records import DeploymentRecord

from .client import ApiClient
from .realise import Refusals, apply_each, delete_object, key_of

APPS = "/apis/apps/v1"
CREATED_BY = "testbed.io/created-by"


def fingerprint(deploy: dict) -> str:
    meta = deploy["metadata"]
    return json.dumps([meta.get("labels"), deploy.get("spec")], sort_keys=True)


def deployment_status(deploy: dict, running: int, generation: int, since: str) -> dict:
    """What the Deployment controller reports once the pods of the current template run."""
    wanted = (deploy.get("spec") or {}).get("replicas", 1)
    available, complete = running >= wanted, running == wanted
    conditions = [
        {"type": "Available", "status": "True" if available else "False",
         "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
         "message": "Deployment has minimum availability." if available else
         "Deployment does not have minimum availability.",
         "lastUpdateTime": since, "lastTransitionTime": since},
        {"type": "Progressing", "status": "True",
         "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
         "message": f'ReplicaSet "{deploy["metadata"]["name"]}" has successfully progressed.'
         if complete else "ReplicaSet is progressing.",
         "lastUpdateTime": since, "lastTransitionTime": since}]
    counts = {"replicas": running, "readyReplicas": running, "updatedReplicas": running,
              "availableReplicas": running}
    return {"observedGeneration": generation, "conditions": conditions,
            **{k: v for k, v in counts.items() if v}}


def replica_set_of(deploy: dict, name: str, running: int) -> dict:
    """The ReplicaSet the Deployment controller keeps for the current template."""
    meta, spec = deploy["metadata"], deploy.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": name, "namespace": meta.get("namespace", "default"),
        "labels": {**template_labels, "pod-template-hash": name.rsplit("-", 1)[-1]},
        "annotations": {"deployment.kubernetes.io/desired-replicas":
                        str(spec.get("replicas", 1))},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                             "name": meta["name"], "uid": meta.get("uid", ""),
                             "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": spec.get("replicas", 1), "selector": spec.get("selector") or {},
                 "template": spec.get("template") or {}},
        "status": {"replicas": running, "readyReplicas": running,
                   "availableReplicas": running, "fullyLabeledReplicas": running}}


def mirror_of(key: str, record: DeploymentRecord, containers: list[str]) -> dict:
    namespace, name = key.split("/", 1)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": name, "namespace": namespace, "annotations": {CREATED_BY: "testbed"}},
        "spec": {"replicas": record.replicas,
                 "selector": {"matchLabels": dict(record.selector)},
                 "template": {"metadata": {"labels": dict(record.selector)}, "spec": {
                     "containers": [{"name": c, "image": "testbed/stand-in"}
                                    for c in containers]}}}}


class DeploymentController:
    def __init__(self, client: ApiClient, refusals: "Refusals | None" = None):
        self.client = client
        self.refusals = refusals or Refusals()
        self.applied = {}   # key -> fingerprint carried into the cluster
        self.refused = {}   # key -> fingerprint the cluster refused
        self.reported = {}  # key -> (status, replica set) written
        self.since = timestamp(time.time())

    def sync(self, cluster: Applying) -> None:
        listed = self.client.get(f"{APPS}/deployments")["items"]
        api = {key_of(d): d for d in listed}
        records = cluster.state.deployments
        wanted = []
        for key, deploy in api.items():
            mine = (deploy["metadata"].get("annotations") or {}).get(CREATED_BY)
            if mine and key not in self.applied:
                continue  # the cluster's own, written by us: already there
            record = records.get(key)
            short = record is not None and len(record.pods) < record.replicas
            if (self.applied.get(key) != fingerprint(deploy) or short) and \
                    self.refused.get(key) != fingerprint(deploy):
                wanted.append(deploy)
        refused = apply_each(self.client, cluster, "apps/v1", "Deployment", wanted) \
            if wanted else {}
        for i, deploy in enumerate(wanted):
            (self.refused if i in refused else self.applied)[key_of(deploy)] = \
                fingerprint(deploy)
            self.refusals.settle("Deployment", key_of(deploy), refused.get(i))
        for key in [k for k in records if k not in api]:
            namespace, name = key.split("/", 1)
            if key in self.applied:
                delete_object(cluster, "apps/v1", "Deployment", namespace, name,
                              {"selector": {"matchLabels": {"x": "x"}}, "template": {
                                  "metadata": {"labels": {"x": "x"}},
                                  "spec": {"containers": [{"name": "x", "image": "x"}]}}})
                self.applied.pop(key, None)
            else:
                self._mirror(cluster, key, records[key])
        for key, deploy in api.items():
            if key in records:
                self._report(cluster, deploy, records[key])

    def _mirror(self, cluster, key, record) -> None:
        pods = cluster.state.pods
        first = pods.get(f"{key.split('/', 1)[0]}/{record.pods[0]}") if record.pods else None
        containers = sorted(first.containers) if first else ["main"]
        self.client.mirror(f"{APPS}/namespaces/{key.split('/', 1)[0]}/deployments",
                           mirror_of(key, record, containers))

    def _report(self, cluster, deploy, record) -> None:
        key = key_of(deploy)
        namespace = deploy["metadata"].get("namespace", "default")
        running = sum(1 for name in record.pods if f"{namespace}/{name}" in cluster.state.pods)
        status = deployment_status(deploy, running, deploy["metadata"].get("generation", 1),
                                   self.since)
        rs = replica_set_of(deploy, record.replica_set, running)
        if self.reported.get(key) == (status, rs):
            return
        self._write_replica_set(namespace, rs)
        code, _doc = self.client.request(
            "PATCH", f"{APPS}/namespaces/{namespace}/deployments/{deploy['metadata']['name']}"
                     "/status", {"status": status}, "application/merge-patch+json")
        if code == 200:
            self.reported[key] = (status, rs)

    def _write_replica_set(self, namespace: str, rs: dict) -> None:
        collection = f"{APPS}/namespaces/{namespace}/replicasets"
        path = f"{collection}/{rs['metadata']['name']}"
        current = self.client.get(path)
        if current is None:
            current = self.client.write("POST", collection, {
                k: v for k, v in rs.items() if k != "status"})
        else:
            current = self.client.write("PUT", path, {
                **rs, "metadata": {**current["metadata"], **rs["metadata"]},
                "status": current.get("status", {})})
        self.client.write("PUT", f"{path}/status", {**current, "status": rs["status"]})
        owner = rs["metadata"]["ownerReferences"][0]["name"]
        for other in self.client.get(f"{collection}")["items"]:  # an old template's set
            refs = other["metadata"].get("ownerReferences") or []
            if other["metadata"]["name"] != rs["metadata"]["name"] and \
                    any(r.get("kind") == "Deployment" and r.get("name") == owner for r in refs):
                self.client.request("DELETE", f"{collection}/{other['metadata']['name']}")
