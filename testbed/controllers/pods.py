"""Pods between the API and the nodes, as the scheduler and the kubelet carry them:

- a Pod created through the API (kubectl run, kubectl apply -f) without a node is bound to
  the node with the fewest pods (the `binding` subresource, as the scheduler binds), then
  given its sandbox on that node through the same path `testbed apply -f` takes (the CNI
  ADD, the stand-in processes, every node's rules), and its status written back: phase,
  podIP(s), hostIP, startTime, conditions and containerStatuses;
- its labels changed through the API (kubectl label) are the pod's labels on the node, so
  Services and NetworkPolicies follow them;
- deleted through the API, its sandbox is removed;
- the cluster's own pods (the topology's, and those `testbed apply -f` made) are written into
  the API with their status, so kubectl lists every pod the nodes run.

A Pod the cluster cannot run (a nodeName that is no node, a namespace it does not know) stays
Pending with the reason in its PodScheduled condition. A pod of a Deployment deleted through
the API leaves the Deployment's pods, and the Deployment controller starts another.
"""
from testbed.api.apply import Applying
from testbed.api.objects import running_pod_status, timestamp
from testbed.model.records import PodRecord

from .client import ApiClient, Writers
from .realise import Refusals, apply_each, delete_object, key_of


def pending_status(reason: str, message: str) -> dict:
    return {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": reason, "message": message,
         "lastProbeTime": None, "lastTransitionTime": timestamp(0)}]}


def made_by_testbed(pod: dict) -> bool:
    """A pod the cluster made itself (the topology's, `testbed apply -f`'s) and wrote into
    the API."""
    return "testbed.io/created-by" in (pod["metadata"].get("annotations") or {})


def mirror_of(record: PodRecord) -> dict:
    """A pod the cluster runs, as a Pod object: its node, labels and containers."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": record.name, "namespace": record.namespace, "labels": dict(record.labels),
        "annotations": {"testbed.io/created-by": "deployment " + record.owner
                        if record.owner else "testbed"}},
        "spec": {"nodeName": record.node, **({"hostNetwork": True} if record.host_network
                                             else {}),
                 "containers": [{"name": name, "image": "testbed/stand-in"}
                                for name in sorted(record.containers)]}}


class PodController:
    def __init__(self, client: ApiClient, refusals: "Refusals | None" = None):
        self.client = client
        self.writers = Writers(client)  # the kubelets write side by side
        self.refusals = refusals or Refusals()
        self.known = set()     # pods in both the API and the cluster once
        self.refused = {}      # key -> the resourceVersion the cluster could not run
        self.reported = {}     # key -> the status last written

    def sync(self, cluster: Applying) -> None:
        listed = self.client.get("/api/v1/pods")
        api = {key_of(p): p for p in listed["items"]}
        state = cluster.state
        self._realise(cluster, api)
        unlisted = []
        for key in [k for k in state.pods if k not in api]:
            record = state.pods[key]
            if key in self.known:  # deleted through the API
                self._remove(cluster, key)
                owner = state.deployments.get(record.owner or "")
                if owner is not None and record.name in owner.pods:
                    owner.pods.remove(record.name)  # its Deployment makes another
                    state.save()
            else:
                unlisted.append(record)
        written = self.writers.each(unlisted, self._mirror)
        api.update({key_of(pod): pod for pod in written if pod is not None})
        reports = []
        for key, record in list(state.pods.items()):
            pod = api.get(key)
            if pod is None:
                continue
            self.known.add(key)
            node = cluster.state.nodes[record.node]
            status = running_pod_status(record, node.addresses_by_family)
            if self.reported.get(key) != status or pod.get("status", {}).get("phase") != \
                    status["phase"]:
                reports.append((pod, status))
        self.writers.each(reports, lambda client, job: self._report(client, *job))

    def _realise(self, cluster, api) -> None:
        """Bind and start the API's pods the cluster does not run yet, and carry label changes
        to those it runs."""
        state = cluster.state
        wanted, relabelled = [], False
        for key, pod in api.items():
            record = state.pods.get(key)
            version = pod["metadata"]["resourceVersion"]
            if record is not None:
                labels = pod["metadata"].get("labels") or {}
                if labels != record.labels:  # kubectl label: Services and policies follow
                    cluster.relabel_pod(key, dict(labels))
                    relabelled = True
                continue
            if key in self.known and made_by_testbed(pod):  # gone by `testbed delete -f`
                meta = pod["metadata"]
                self.client.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/"
                                              f"{meta['name']}")
                continue
            if key in self.known or self.refused.get(key) == version:
                continue  # removed by us already, or refused as it is
            if not pod.get("spec", {}).get("nodeName"):
                pod = self._bind(pod, cluster.least_busy_node())
            wanted.append(pod)
        if relabelled:
            cluster.sync_network()
        if not wanted:
            return
        refused = apply_each(self.client, cluster, "v1", "Pod", wanted)
        for i, pod in enumerate(wanted):
            if i in refused:
                self._refuse(pod, refused[i])
            else:
                self.known.add(key_of(pod))
            self.refusals.settle("Pod", key_of(pod), refused.get(i))

    def _bind(self, pod: dict, node: str) -> dict:
        meta = pod["metadata"]
        self.client.write("POST", f"/api/v1/namespaces/{meta.get('namespace', 'default')}"
                          f"/pods/{meta['name']}/binding", {
                              "apiVersion": "v1", "kind": "Binding",
                              "metadata": {"name": meta["name"]},
                              "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
                          ok=(200, 201))
        return {**pod, "spec": {**pod.get("spec", {}), "nodeName": node}}

    def _refuse(self, pod: dict, message: str) -> None:
        version = self._report(self.client, pod,
                               pending_status("FailedCreate", message.split(": ", 1)[-1]))
        self.refused[key_of(pod)] = version or pod["metadata"]["resourceVersion"]

    def _remove(self, cluster, key: str) -> None:
        namespace, name = key.split("/", 1)
        delete_object(cluster, "v1", "Pod", namespace, name,
                      {"containers": [{"name": "gone", "image": "gone"}]})
        self.known.discard(key)
        self.reported.pop(key, None)

    @staticmethod
    def _mirror(client, record) -> dict | None:
        """Write a pod the cluster made into the API; the object written (None if another
        writer was first: the next pass sees it)."""
        return client.mirror(f"/api/v1/namespaces/{record.namespace}/pods", mirror_of(record))

    def _report(self, client, pod: dict, status: dict) -> str | None:
        """Write a pod's status (a merge patch of /status, as the kubelet patches it); the
        pod's resourceVersion after it."""
        key = key_of(pod)
        meta = pod["metadata"]
        code, doc = client.request(
            "PATCH", f"/api/v1/namespaces/{meta.get('namespace', 'default')}/pods/"
                     f"{meta['name']}/status", {"status": status},
            "application/merge-patch+json")
        if code != 200:
            return None
        self.reported[key] = status
        return doc["metadata"]["resourceVersion"]
