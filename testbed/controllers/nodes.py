"""Nodes as the kubelet registers them and reports their status: one Node object per node
of the cluster, with its pod CIDR, addresses, labels, capacity, node info and a Ready
condition, written when missing or changed (kubectl get nodes -o wide)."""
import os
import time

from testbed.api.apply import Applying
from testbed.api.objects import timestamp
from testbed.apiserver.discovery import VERSION
from testbed.model.records import NodeRecord

from .client import ApiClient, Writers

MAX_PODS = "110"  # the kubelet's default --max-pods


def _os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _memory_kib() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return 0


def node_object(name: str, record: NodeRecord, since: str) -> dict:
    """The Node a kubelet on `name` would register ({pod CIDRs from the node's lease, its
    underlay address}); `since`: when it became Ready."""
    cidrs = [c.strip() for c in (record.lease or "").split(",") if c.strip()]
    capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki",
                "pods": MAX_PODS, "ephemeral-storage": "0"}
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status", "lastHeartbeatTime": since,
             "lastTransitionTime": since}
    spec = {"podCIDR": cidrs[0], "podCIDRs": cidrs} if cidrs else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": record.topology_zone}},
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": capacity, "conditions": [ready],
                   "addresses": [{"type": "InternalIP", "address": ip}
                                 for ip in record.addresses_by_family] +
                   [{"type": "Hostname", "address": name}],
                   "nodeInfo": {"kernelVersion": os.uname().release, "osImage": _os_image(),
                                "operatingSystem": "linux", "architecture": "amd64",
                                "containerRuntimeVersion": "testbed://namespaces",
                                "kubeletVersion": VERSION["gitVersion"],
                                "kubeProxyVersion": VERSION["gitVersion"],
                                "machineID": "", "systemUUID": "", "bootID": ""}}}


class NodeRegistrar:
    """Writes every node's Node object, and writes it again if it goes (deleted with
    kubectl, or the store lost) or the node's facts change."""

    def __init__(self, client: ApiClient):
        self.client = client
        self.writers = Writers(client)
        self.written = {}  # node -> (resourceVersion, the facts written)
        self.since = timestamp(time.time())

    def sync(self, cluster: Applying) -> None:
        listed = {n["metadata"]["name"]: n for n in self.client.get("/api/v1/nodes")["items"]}
        due = []
        for name, record in cluster.state.nodes.items():
            wanted = node_object(name, record, self.since)
            facts = (wanted["spec"], wanted["metadata"]["labels"],
                     wanted["status"]["addresses"])
            current = listed.get(name)
            if current is None or self.written.get(name) != (
                    current["metadata"]["resourceVersion"], facts):
                due.append((name, wanted, facts, current))
        self.writers.each(due, self._register)

    def _register(self, client, job) -> None:
        """Write one Node (made if missing), then its status, as a kubelet registers."""
        name, wanted, facts, current = job
        if current is None:
            current = client.write("POST", "/api/v1/nodes", {
                k: v for k, v in wanted.items() if k != "status"})
        current["spec"] = {**current.get("spec", {}), **wanted["spec"]}
        current["metadata"]["labels"] = {**current["metadata"].get("labels", {}),
                                         **wanted["metadata"]["labels"]}
        current = client.write("PUT", f"/api/v1/nodes/{name}", current)
        current["status"] = wanted["status"]
        done = client.write("PUT", f"/api/v1/nodes/{name}/status", current)
        self.written[name] = (done["metadata"]["resourceVersion"], facts)
