"""Manifests into a running cluster: what `testbed apply -f` and `testbed delete -f` do.

The whole set is checked against the cluster first (namespaces exist or come with it, nodes
named by nodeName exist, a running pod is changed only in its labels, SCTP Service ports need
the kernel's SCTP), so a refused set changes nothing. Pods are known by "<namespace>/<name>":
the same name may be used in several namespaces, as in Kubernetes. Then, as the
API server, scheduler and kubelets would: Namespaces are recorded, Pods attached to their
node, and each Deployment gets a ReplicaSet's pods (`<deployment>-<template hash>-<5 chars>`)
spread over the nodes with the fewest pods. Re-applying a Deployment scales it; a changed
template replaces its pods. Services get a
ClusterIP (and node ports) and every node's kube-proxy rules are rewritten after each change.
"""
import copy
import dataclasses
import re
import time
import uuid
from collections.abc import Iterable
from typing import Protocol

from testbed.addons.dns import ClusterDNS
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.waiting import wait_until
from testbed.ingress.controller import IngressController, missing_tools
from testbed.kubelet.service_env import service_env
from testbed.kubelet.standins import command_for, listening
from testbed.kubeproxy import services
from testbed.manifests import kinds
from testbed.manifests.kinds import Manifests
from testbed.model.context import NodeContext, PodHost
from testbed.model.records import (
    DeploymentRecord,
    NamespaceRecord,
    PolicyEnforcement,
    PolicyRecord,
)
from testbed.model.state import DEFAULT_NAMESPACES
from testbed.model.topology import ContainerSpec, PodSpec, pod_key
from testbed.policy.nftables import Enforcer

READY_TIMEOUT_S = 10.0


class Applying(PodHost, Protocol):
    """What applying objects uses of a cluster (lifecycle.cluster.Cluster is one): what an
    add-on uses of it (a manifest starts cluster DNS and the Ingress controller, which are
    given the same cluster), its nodes, pods relabelled and removed as the kubelets would,
    and the network brought in step after a change."""
    nodes: dict[str, NodeContext]
    caps: dict[str, bool]
    dns: ClusterDNS
    ingress: IngressController
    policy: Enforcer | None

    def remove_pod(self, key: str) -> None: ...

    def relabel_pod(self, key: str, labels: dict[str, str]) -> None: ...

    def policy_status(self) -> PolicyEnforcement: ...

    def sync_network(self) -> None: ...


class Result:
    def __init__(self, warnings: Iterable[str]):
        self.warnings = list(warnings)
        self.created: list[str] = []
        self.removed: list[str] = []

    def as_dict(self) -> dict[str, list[str]]:
        return {"warnings": self.warnings, "created": self.created, "removed": self.removed}


WARNING = re.compile(r"^(?P<where>\S+:\d+): (?P<what>\w+ [\w./-]+): (?P<rest>.+)$")


def condensed(warnings: Iterable[str]) -> list[str]:
    """Warnings of one field repeated over many objects (upstream's manifests repeat
    imagePullPolicy in every pod) as one line each, naming where they occur."""
    groups, out = {}, []
    for w in warnings:
        m = WARNING.match(w)
        if m is None:
            out.append(w)
            continue
        # list indices apart, the same field: containers[0].x and containers[3].x
        groups.setdefault(re.sub(r"\[\d+\]", "[*]", m["rest"]), []).append(
            (m["what"], m["where"], m["rest"]))
    for rest, places in groups.items():
        if len(places) < 3:
            out += [f"{where}: {what}: {exact}" for what, where, exact in places]
            continue
        shown = ", ".join(f"{what} ({where})" for what, where, _exact in places[:2])
        out.append(f"{rest}: {len(places)} times: {shown} and {len(places) - 2} more")
    return out


def report(reply: dict, op: str) -> tuple[list[str], list[str]]:
    """(warning lines, result lines) of an apply or delete reply, worded like kubectl's."""
    warnings = [f"warning: {w}" for w in condensed(reply.get("warnings", []))]
    if op == "apply":
        return warnings, list(reply.get("created", []))
    return warnings, [f"{item} deleted" for item in reply.get("removed", [])]


def check(cluster: Applying, objects: list) -> None:
    """Refuse the set before anything is applied; TestbedError names the object."""
    namespaces = set(cluster.state.namespaces) | \
        {o.name for o in objects if isinstance(o, kinds.Namespace)}
    pods = cluster.state.pods
    for obj in objects:
        ns = getattr(obj, "namespace", None)
        if ns is not None and ns not in namespaces:
            raise TestbedError(f"{obj.source}: {obj.kind} {ns}/{obj.name}: namespace {ns!r} "
                               "does not exist (apply a Namespace first or with it)")
        if isinstance(obj, (kinds.Pod, kinds.Deployment)):
            node = obj.template.node_name
            if node and node not in cluster.nodes:
                raise TestbedError(f"{obj.source}: {obj.kind} {ns}/{obj.name}: nodeName "
                                   f"{node!r} is no node of this cluster "
                                   f"({', '.join(cluster.nodes)})")
        if isinstance(obj, kinds.Service):
            _check_service_protocols(cluster, obj)
        if isinstance(obj, kinds.Ingress) and cluster.ingress.pod is None and \
                missing_tools():
            raise TestbedError(f"{obj.source}: Ingress {ns}/{obj.name}: {missing_tools()}")
        if isinstance(obj, kinds.Pod) and pod_key(ns, obj.name) in pods:
            record = pods[pod_key(ns, obj.name)]
            if record.spec != _pod_spec_key(obj.template):
                raise TestbedError(f"{obj.source}: Pod {ns}/{obj.name}: a pod's containers, "
                                   "nodeName, hostNetwork and DNS settings cannot change (only "
                                   "its labels); delete it first")


def _check_service_protocols(cluster, svc):
    """kube-proxy's rules for an SCTP port need SCTP in the kernel's connection tracking and
    NAT; without it the API server would take the Service, but no node could serve it."""
    for i, port in enumerate(svc.ports):
        if port.protocol == "SCTP" and not cluster.caps.get("nf-sctp", False):
            raise TestbedError(f"{svc.source}: Service {svc.namespace}/{svc.name}: "
                               f"spec.ports[{i}].protocol = SCTP: kube-proxy's rules for SCTP "
                               "need the kernel's SCTP connection tracking (nf_conntrack with "
                               "SCTP), which this kernel lacks (see `testbed doctor`)")


def _pod_spec_key(template):
    """What of a Pod cannot change once it runs: its containers, its node, its DNS setup."""
    if template.dns == kinds.PodDNS() and not template.host_network:  # as recorded before
        return repr((template.containers, template.node_name))
    return repr((template.containers, template.node_name, template.dns, template.host_network))


def _outcome(before, after):
    """kubectl's word for applying an object: created, configured or unchanged."""
    if before is None:
        return "created"
    return "unchanged" if before == after else "configured"


def apply(cluster: Applying, loaded: Manifests) -> Result:
    check(cluster, loaded.objects)
    result = Result(loaded.warnings)
    cluster.dns.start(cluster)  # the kube-dns add-on comes with the first manifest
    state = cluster.state
    pods = state.pods
    for obj in loaded.objects:
        if isinstance(obj, kinds.Namespace):
            before = state.namespaces.get(obj.name)
            word = _outcome(before.labels if before else None, obj.labels)
            state.namespaces[obj.name] = NamespaceRecord(
                dict(obj.labels), (before.created if before else None) or time.time())
            result.created.append(f"namespace/{obj.name} {word}")
        elif isinstance(obj, kinds.Pod) and pod_key(obj.namespace, obj.name) in pods:
            key = pod_key(obj.namespace, obj.name)
            word = _outcome(pods[key].labels, obj.template.labels)
            cluster.relabel_pod(key, dict(obj.template.labels))
            result.created.append(f"pod/{obj.name} {word}")
        elif isinstance(obj, kinds.Pod):
            _create(cluster, obj.name, obj.namespace, obj.template, result, owner=None)
        elif isinstance(obj, kinds.Deployment):
            _apply_deployment(cluster, obj, result)
        elif isinstance(obj, kinds.Service):
            key = f"{obj.namespace}/{obj.name}"
            before = copy.deepcopy(state.services.get(key))
            after = services.add(state, obj, cluster.spec.load_balancer_addresses)
            word = _outcome(before, after)
            result.created.append(f"service/{obj.name} {word}")
            if word != "unchanged":
                state.event("Normal", word.capitalize(), f"service/{key}",
                            f"ClusterIP {after.cluster_ip or '<none>'}, {obj.type}")
        elif isinstance(obj, (kinds.Ingress, kinds.IngressClass, kinds.Secret)):
            _apply_ingress_object(state, obj, result)
        else:
            key = f"{obj.namespace}/{obj.name}"
            before = state.policies.get(key)
            word = _outcome(before.policy if before else None, dataclasses.replace(obj, source=""))
            state.policies[key] = PolicyRecord(dataclasses.replace(obj, source=""),
                                               (before.created if before else 0) or time.time())
            result.created.append(f"networkpolicy.networking.k8s.io/{obj.name} {word}")
            if word != "unchanged":
                state.event("Normal", "PolicyApplied", f"networkpolicy/{key}", f"{word}; " + (
                    "enforced in every node's table ip calico" if cluster.policy is not None
                    else f"not enforced: {cluster.policy_status().note}"))
    if state.ingresses:
        cluster.ingress.start(cluster)  # the controller comes with the first Ingress
    cluster.state.save()
    cluster.sync_network()
    if any(isinstance(o, (kinds.Ingress, kinds.Secret)) for o in loaded.objects):
        result.warnings += cluster.ingress.warnings
    return result


def _apply_ingress_object(state, obj, result):
    """Record an Ingress, an IngressClass or a Secret (nginx follows in sync_network)."""
    if isinstance(obj, kinds.IngressClass):
        value = {"controller": obj.controller, "default": obj.default}
        word = _outcome(state.ingress_classes.get(obj.name), value)
        state.ingress_classes[obj.name] = value
        result.created.append(f"ingressclass.networking.k8s.io/{obj.name} {word}")
        return
    key = f"{obj.namespace}/{obj.name}"
    if isinstance(obj, kinds.Secret):
        value = {"type": obj.type, "data": dict(obj.data)}
        word = _outcome(state.secrets.get(key), value)
        state.secrets[key] = value
        result.created.append(f"secret/{obj.name} {word}")
        return
    before = state.ingresses.get(key)
    word = _outcome(before["spec"] if before else None, obj.spec)
    state.ingresses[key] = {"spec": obj.spec,
                            "created": (before["created"] if before else 0) or time.time()}
    result.created.append(f"ingress.networking.k8s.io/{obj.name} {word}")
    if word != "unchanged":
        state.event("Normal", "Sync", f"ingress/{key}", "Scheduled for sync")


def refuse_deleting_system_namespaces(loaded: Manifests) -> None:
    for obj in loaded.objects:  # as the API server refuses it
        if isinstance(obj, kinds.Namespace) and obj.name in DEFAULT_NAMESPACES:
            raise TestbedError(f"{obj.source}: namespace {obj.name!r} may not be deleted")


def delete(cluster: Applying, loaded: Manifests) -> Result:
    refuse_deleting_system_namespaces(loaded)
    result = Result(loaded.warnings)
    state = cluster.state
    pods = state.pods
    for obj in loaded.objects:
        if isinstance(obj, kinds.Namespace):
            in_it = f"{obj.name}/"
            for key in [k for k, rec in pods.items() if rec.namespace == obj.name]:
                _remove(cluster, key, result)
            for key in [k for k in state.deployments if k.startswith(in_it)]:
                del state.deployments[key]
            for key in [k for k in state.services if k.startswith(in_it)]:
                services.remove(state, *key.split("/", 1))
                result.removed.append(f"service/{key.split('/', 1)[1]}")
            for key in [k for k in state.policies if k.startswith(in_it)]:
                del state.policies[key]
                result.removed.append(f"networkpolicy.networking.k8s.io/{key.split('/', 1)[1]}")
            for key in [k for k in state.ingresses if k.startswith(in_it)]:
                del state.ingresses[key]
                result.removed.append(f"ingress.networking.k8s.io/{key.split('/', 1)[1]}")
            for key in [k for k in state.secrets if k.startswith(in_it)]:
                del state.secrets[key]
                result.removed.append(f"secret/{key.split('/', 1)[1]}")
            if state.namespaces.pop(obj.name, None) is not None:
                result.removed.append(f"namespace/{obj.name}")
        elif isinstance(obj, kinds.Pod):
            if pod_key(obj.namespace, obj.name) in pods:
                _remove(cluster, pod_key(obj.namespace, obj.name), result)
        elif isinstance(obj, kinds.Deployment):
            record = state.deployments.pop(f"{obj.namespace}/{obj.name}", None)
            for name in record.pods if record else []:
                _remove(cluster, pod_key(obj.namespace, name), result)
            if record is not None:
                result.removed.append(f"deployment/{obj.name}")
        elif isinstance(obj, kinds.Service):
            if services.remove(cluster.state, obj.namespace, obj.name):
                result.removed.append(f"service/{obj.name}")
                state.event("Normal", "Deleted", f"service/{obj.namespace}/{obj.name}", "")
        elif isinstance(obj, kinds.Ingress):
            if state.ingresses.pop(f"{obj.namespace}/{obj.name}", None) is not None:
                result.removed.append(f"ingress.networking.k8s.io/{obj.name}")
        elif isinstance(obj, kinds.Secret):
            if state.secrets.pop(f"{obj.namespace}/{obj.name}", None) is not None:
                result.removed.append(f"secret/{obj.name}")
        elif isinstance(obj, kinds.IngressClass):
            if state.ingress_classes.pop(obj.name, None) is not None:
                result.removed.append(f"ingressclass.networking.k8s.io/{obj.name}")
        elif state.policies.pop(f"{obj.namespace}/{obj.name}", None) is not None:
            result.removed.append(f"networkpolicy.networking.k8s.io/{obj.name}")
            state.event("Normal", "PolicyRemoved", f"networkpolicy/{obj.namespace}/{obj.name}",
                        "its rules leave every node's table")
    cluster.state.save()
    cluster.sync_network()
    return result


def _apply_deployment(cluster, deploy, result):
    key = f"{deploy.namespace}/{deploy.name}"
    record = cluster.state.deployments.get(key)
    rs = deploy.replica_set
    existed = record is not None
    if existed and record.replica_set != rs:  # a new template: new pods
        for name in record.pods:
            _remove(cluster, pod_key(deploy.namespace, name), result)
        record = None
    if record is None:
        record = DeploymentRecord(0, dict(deploy.selector), rs)
        cluster.state.deployments[key] = record
        result.created.append(f"deployment.apps/{deploy.name} "
                              f"{'configured' if existed else 'created'}")
    elif record.replicas != deploy.replicas:
        result.created.append(f"deployment.apps/{deploy.name} configured")
    else:
        result.created.append(f"deployment.apps/{deploy.name} unchanged")
    record.replicas = deploy.replicas
    while len(record.pods) > deploy.replicas:  # scale down: the newest go first
        _remove(cluster, pod_key(deploy.namespace, record.pods.pop()), result)
    while len(record.pods) < deploy.replicas:
        name = f"{rs}-{kinds.pod_suffix(uuid.uuid4().hex)}"
        record.pods.append(name)
        _create(cluster, name, deploy.namespace, deploy.template, result, owner=key)


def _create(cluster, name, namespace, template, result, owner):
    containers = []
    links = service_env(cluster.state.services, namespace, template.dns.service_links)
    for c in template.containers:
        argv, warnings = command_for(c, name)
        result.warnings += [f"pod {namespace}/{name} container {c.name}: {w}" for w in warnings]
        env = dict(links)
        env.update(c.env)  # the container's own env wins
        containers.append(ContainerSpec(c.name, tuple(argv), tuple(env.items())))
    pod = PodSpec(name, namespace, template.node_name or cluster.least_busy_node(),
                  dict(template.labels), tuple(containers),
                  {**template.dns.record(), "host_network": template.host_network},
                  template.host_network)
    served = [port for c in pod.containers for port in listening(list(c.command), c.env)]
    if any(proto == "sctp" for proto, _port in served) and not cluster.caps.get("sctp"):
        result.warnings.append(f"pod {namespace}/{name}: serves SCTP, but this kernel has no "
                               "SCTP sockets (module sctp): its container exits, as agnhost "
                               "does on such a node (see `testbed doctor`)")
        served = [(proto, port) for proto, port in served if proto != "sctp"]
    record = cluster.add_pod(pod)
    _wait_until_listening(pod.key, record.netns, served)
    record.owner = owner
    record.spec = _pod_spec_key(template)
    # named container ports, for Services' targetPorts and policies' ports that name one
    record.ports = {p.name: p.container_port for c in template.containers for p in c.ports
                    if p.name}
    cluster.state.save()
    result.created.append(f"pod/{name} created")


def _wait_until_listening(key, sandbox, ports):
    """Until the pod's stand-ins listen ([(protocol, port)], TCP or UDP), as a kubelet reports
    a pod ready before Services send it connections."""
    def all_bound():
        bound = {"tcp": netns.run(netns.in_pod(sandbox, ["ss", "-Hltn"])),
                 "udp": netns.run(netns.in_pod(sandbox, ["ss", "-Hlun"]))}
        ports[:] = [(proto, p) for proto, p in ports if f":{p} " not in bound[proto]]
        return not ports

    ports = list(ports)
    if not wait_until(all_bound, READY_TIMEOUT_S):
        raise TestbedError(f"pod {key}: nothing listens on port(s) "
                           f"{', '.join(f'{p}/{proto.upper()}' for proto, p in ports)} "
                           f"after {READY_TIMEOUT_S:.0f} s (see its log in the run directory)")


def _remove(cluster, key, result):
    cluster.remove_pod(key)
    result.removed.append(f"pod/{key.split('/', 1)[1]}")
