"""Manifests into a running cluster: what `testbed apply -f` and `testbed delete -f` do.

The whole set is checked against the cluster first (namespaces exist or come with it, nodes
named by nodeName exist, pod names are free), so a refused set changes nothing. Then, as the
API server, scheduler and kubelets would: Namespaces are recorded, Pods attached to their
node, and each Deployment gets a ReplicaSet's pods (`<deployment>-<template hash>-<5 chars>`)
spread over the nodes with the fewest pods. Re-applying a Deployment scales it; a changed
template replaces its pods. Services get a
ClusterIP (and node ports) and every node's kube-proxy rules are rewritten after each change.
"""
import time
import uuid

from . import manifests as mf
from . import netns, policy, services
from .errors import TestbedError
from .spec import ContainerSpec, PodSpec
from .workloads import command_for, tcp_ports

READY_TIMEOUT_S = 10.0

DEFAULT_NAMESPACES = ("default", "kube-system")


class Result:
    def __init__(self, warnings):
        self.warnings = list(warnings)
        self.created, self.removed = [], []

    def as_dict(self):
        return {"warnings": self.warnings, "created": self.created, "removed": self.removed}


def report(reply, op):
    """(warning lines, result lines) of an apply or delete reply, worded like kubectl's."""
    warnings = [f"warning: {w}" for w in reply.get("warnings", [])]
    if op == "apply":
        return warnings, list(reply.get("created", []))
    return warnings, [f"{item} deleted" for item in reply.get("removed", [])]


def _namespaces(state):
    return state.data.setdefault("namespaces", {n: {"labels": {}} for n in DEFAULT_NAMESPACES})


def _deployments(state):
    return state.data.setdefault("deployments", {})


def check(cluster, objects):
    """Refuse the set before anything is applied; TestbedError names the object."""
    namespaces = set(_namespaces(cluster.state)) | \
        {o.name for o in objects if isinstance(o, mf.Namespace)}
    taken = set(cluster.state.data["pods"])
    for obj in objects:
        ns = getattr(obj, "namespace", None)
        if ns is not None and ns not in namespaces:
            raise TestbedError(f"{obj.source}: {obj.kind} {ns}/{obj.name}: namespace {ns!r} "
                               "does not exist (apply a Namespace first or with it)")
        if isinstance(obj, (mf.Pod, mf.Deployment)):
            node = obj.template.node_name
            if node and node not in cluster.nodes:
                raise TestbedError(f"{obj.source}: {obj.kind} {ns}/{obj.name}: nodeName "
                                   f"{node!r} is no node of this cluster "
                                   f"({', '.join(cluster.nodes)})")
        if isinstance(obj, mf.Pod) and obj.name in taken:
            record = cluster.state.data["pods"][obj.name]
            if record["namespace"] != ns:
                raise TestbedError(f"{obj.source}: Pod {ns}/{obj.name}: a pod named "
                                   f"{obj.name!r} exists already in namespace "
                                   f"{record['namespace']} (pod names are unique across "
                                   "namespaces here)")
            if record.get("spec") != _pod_spec_key(obj.template):
                raise TestbedError(f"{obj.source}: Pod {ns}/{obj.name}: a pod's containers "
                                   "and nodeName cannot change (only its labels); delete it "
                                   "first")


def _pod_spec_key(template):
    """What of a Pod cannot change once it runs: its containers and its node."""
    return repr((template.containers, template.node_name))


def _outcome(before, after):
    """kubectl's word for applying an object: created, configured or unchanged."""
    if before is None:
        return "created"
    return "unchanged" if before == after else "configured"


def apply(cluster, loaded):
    check(cluster, loaded.objects)
    result = Result(loaded.warnings)
    cluster.dns.start(cluster)  # the kube-dns add-on comes with the first manifest
    pods = cluster.state.data["pods"]
    for obj in loaded.objects:
        if isinstance(obj, mf.Namespace):
            record = {"labels": obj.labels}
            word = _outcome(_namespaces(cluster.state).get(obj.name), record)
            _namespaces(cluster.state)[obj.name] = record
            result.created.append(f"namespace/{obj.name} {word}")
        elif isinstance(obj, mf.Pod) and obj.name in pods:
            word = _outcome(pods[obj.name]["labels"], obj.template.labels)
            cluster.relabel_pod(obj.name, dict(obj.template.labels))
            result.created.append(f"pod/{obj.name} {word}")
        elif isinstance(obj, mf.Pod):
            _create(cluster, obj.name, obj.namespace, obj.template, result, owner=None)
        elif isinstance(obj, mf.Deployment):
            _apply_deployment(cluster, obj, result)
        elif isinstance(obj, mf.Service):
            key = f"{obj.namespace}/{obj.name}"
            before = dict(services.table(cluster.state).get(key) or {}) or None
            after = services.add(cluster.state, obj, cluster.spec.load_balancer_pool)
            result.created.append(f"service/{obj.name} {_outcome(before, after)}")
        else:
            key = f"{obj.namespace}/{obj.name}"
            record = policy.to_record(obj)
            word = _outcome(policy.table(cluster.state).get(key), record)
            policy.table(cluster.state)[key] = record
            result.created.append(f"networkpolicy.networking.k8s.io/{obj.name} {word}")
    cluster.state.save()
    cluster.sync_network()
    return result


def delete(cluster, loaded):
    for obj in loaded.objects:  # as the API server refuses it
        if isinstance(obj, mf.Namespace) and obj.name in DEFAULT_NAMESPACES:
            raise TestbedError(f"{obj.source}: namespace {obj.name!r} may not be deleted")
    result = Result(loaded.warnings)
    pods = cluster.state.data["pods"]
    for obj in loaded.objects:
        if isinstance(obj, mf.Namespace):
            for name in [p for p, rec in pods.items() if rec["namespace"] == obj.name]:
                _remove(cluster, name, result)
            for key in [k for k in _deployments(cluster.state) if k.startswith(f"{obj.name}/")]:
                del _deployments(cluster.state)[key]
            for key in [k for k in services.table(cluster.state) if k.startswith(f"{obj.name}/")]:
                services.remove(cluster.state, *key.split("/", 1))
                result.removed.append(f"service/{key.split('/', 1)[1]}")
            for key in [k for k in policy.table(cluster.state) if k.startswith(f"{obj.name}/")]:
                del policy.table(cluster.state)[key]
                result.removed.append(f"networkpolicy.networking.k8s.io/{key.split('/', 1)[1]}")
            if _namespaces(cluster.state).pop(obj.name, None) is not None:
                result.removed.append(f"namespace/{obj.name}")
        elif isinstance(obj, mf.Pod):
            if obj.name in pods and pods[obj.name]["namespace"] == obj.namespace:
                _remove(cluster, obj.name, result)
        elif isinstance(obj, mf.Deployment):
            record = _deployments(cluster.state).pop(f"{obj.namespace}/{obj.name}", None)
            for name in (record or {}).get("pods", []):
                _remove(cluster, name, result)
            if record is not None:
                result.removed.append(f"deployment/{obj.name}")
        elif isinstance(obj, mf.Service):
            if services.remove(cluster.state, obj.namespace, obj.name):
                result.removed.append(f"service/{obj.name}")
        elif policy.table(cluster.state).pop(f"{obj.namespace}/{obj.name}", None) is not None:
            result.removed.append(f"networkpolicy.networking.k8s.io/{obj.name}")
    cluster.state.save()
    cluster.sync_network()
    return result


def _apply_deployment(cluster, deploy, result):
    key = f"{deploy.namespace}/{deploy.name}"
    record = _deployments(cluster.state).get(key)
    rs = deploy.replica_set
    existed = record is not None
    if existed and record["replica_set"] != rs:  # a new template: new pods
        for name in record["pods"]:
            _remove(cluster, name, result)
        record = None
    if record is None:
        record = {"replica_set": rs, "selector": deploy.selector, "pods": []}
        _deployments(cluster.state)[key] = record
        result.created.append(f"deployment.apps/{deploy.name} "
                              f"{'configured' if existed else 'created'}")
    elif record["replicas"] != deploy.replicas:
        result.created.append(f"deployment.apps/{deploy.name} configured")
    else:
        result.created.append(f"deployment.apps/{deploy.name} unchanged")
    record["replicas"] = deploy.replicas
    while len(record["pods"]) > deploy.replicas:  # scale down: the newest go first
        _remove(cluster, record["pods"].pop(), result)
    while len(record["pods"]) < deploy.replicas:
        name = f"{rs}-{mf.pod_suffix(uuid.uuid4().hex)}"
        record["pods"].append(name)
        _create(cluster, name, deploy.namespace, deploy.template, result, owner=key)


def _create(cluster, name, namespace, template, result, owner):
    containers = []
    for c in template.containers:
        argv, warning = command_for(c, name)
        if warning:
            result.warnings.append(f"pod {namespace}/{name} container {c.name}: {warning}")
        containers.append(ContainerSpec(c.name, tuple(argv)))
    pod = PodSpec(name, namespace, template.node_name or cluster.least_busy_node(),
                  dict(template.labels), tuple(containers))
    record = cluster.add_pod(pod)
    _wait_until_listening(name, [port for c in pod.containers
                                 for port in tcp_ports(list(c.command))])
    record["owner"] = owner
    record["spec"] = _pod_spec_key(template)
    # named container ports, for Services' targetPorts and policies' ports that name one
    record["ports"] = {p.name: p.container_port for c in template.containers for p in c.ports
                       if p.name}
    cluster.state.save()
    result.created.append(f"pod/{name} created")


def _wait_until_listening(pod, ports):
    """Until the pod's stand-ins listen, as a kubelet reports a pod ready before Services send
    it connections."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ports:
        listening = netns.run(netns.in_pod(pod, ["ss", "-Hltn"]))
        ports = [p for p in ports if f":{p} " not in listening]
        if ports and time.monotonic() > deadline:
            raise TestbedError(f"pod {pod}: nothing listens on port(s) "
                               f"{', '.join(map(str, ports))} after {READY_TIMEOUT_S:.0f} s "
                               f"(see its log in the run directory)")
        if ports:
            time.sleep(0.05)


def _remove(cluster, name, result):
    cluster.remove_pod(name)
    result.removed.append(f"pod/{name}")
