"""Verbs on Kubernetes objects, as kubectl has them: apply, delete, get, describe, logs."""
import argparse
import json
import os
import signal
import sys
import time
from dataclasses import asdict

import yaml

from testbed import manifests
from testbed.api import objects as ko
from testbed.api.apply import report
from testbed.api.describe import describe, describe_api_pod
from testbed.api.tables import find_pod, human_duration, render_table, rows
from testbed.apiserver.resources import RESOURCES
from testbed.cli.common import find_run, namespace_option
from testbed.controllers.client import admin_client
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.processes import pid_is
from testbed.host.signals import Interrupted, signals_interrupt
from testbed.lifecycle.control import request
from testbed.model import logs
from testbed.model.state import RunState
from testbed.modes import services_by
from testbed.policy import drops
from testbed.underlay.names import in_host


def cmd_apply(args: argparse.Namespace) -> int | None:
    """Manifests into (or, with delete, out of) the running cluster, through its owner."""
    state = find_run(args.name)
    path = os.path.abspath(args.filename)
    manifests.load(path)  # a bad file is refused here, before the cluster is asked
    owner = state.supervisor
    if not os.path.exists(state.control_socket) or not (owner and pid_is(owner.pid,
                                                                          owner.start)):
        raise TestbedError(f"cluster {state.name} is run by an interactive `testbed up`: use "
                           f"`{args.command} -f {args.filename}` at its prompt")
    reply = request(state, args.command, path=path)
    warnings, done = report(reply, args.command)
    for line in warnings:
        print(line, file=sys.stderr)
    if not reply.get("ok") and "errors" not in reply:
        raise TestbedError(reply.get("error"))
    if done:
        print("\n".join(done))
    for line in reply.get("errors", []):  # as kubectl: what was applied stays, each refusal
        print(line, file=sys.stderr)      # named, exit 1
    return 0 if reply.get("ok") else 1


def cmd_get(args: argparse.Namespace) -> int | None:
    """kubectl get: one namespace (-n, default `default`) or all (-A); a table, or the
    objects as kubectl's JSON or YAML."""
    state = find_run(args.name)
    if args.what.lower() == "drops":
        return _print_drops(state, args)
    if args.what.lower() in ("events", "ev"):
        return _print_events(state, args)
    kind = ko.ALIASES.get(args.what.lower())
    if kind is None:
        raise TestbedError(f'the server doesn\'t have a resource type "{args.what}" (known: '
                           f"{', '.join(ko.RESOURCES)})")
    namespaced = ko.RESOURCES[kind][1]
    namespace = None if args.all_namespaces or not namespaced else args.namespace
    items = listed(state, kind, namespace)
    if args.object:
        items = [o for o in items if o["metadata"]["name"] == args.object]
        if not items:
            where = f" in namespace {namespace}" if namespace else ""
            raise TestbedError(f'{kind} "{args.object}" not found{where}')
    if args.output in ("json", "yaml"):
        doc = items[0] if args.object else ko.listing(items)
        if args.output == "json":
            print(json.dumps(doc, indent=4))
        else:
            print(yaml.safe_dump(doc, sort_keys=True, default_flow_style=False).rstrip())
        return 0
    if not items:
        where = f" in {namespace} namespace" if namespace else ""
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    print(render_table(rows(kind, items, state, args.all_namespaces and namespaced,
                            args.output == "wide")))
    enforcement = state.network_policy
    if kind == "networkpolicies" and not enforcement.enforced:
        print(f"# not enforced in this cluster: {enforcement.note or 'no CNI mode'}")
    return 0


def listed(state: RunState, kind: str, namespace: str | None) -> list[dict]:
    """The objects of one resource as the API server holds them, the truth kubectl reads
    too (without managedFields, as kubectl shows them); from the run's state for a cluster
    built without an API server."""
    if not state.control_plane:
        return ko.RESOURCES[kind][0](state, namespace)
    resource = next(r for r in RESOURCES if r.name == kind)
    found = admin_client(state.control_plane).get(resource.path(namespace)) or {"items": []}
    items = []
    for item in found["items"]:
        meta = item["metadata"]
        meta.pop("managedFields", None)
        pod = state.pods.get(f"{meta.get('namespace')}/{meta['name']}")
        if kind == "pods" and pod is not None:  # where the pod runs, which only testbed knows
            meta.setdefault("annotations", {})[ko.SANDBOX_ANNOTATION] = pod.netns
        items.append({"apiVersion": resource.group_version, "kind": resource.kind, **item})
    return items


def read_drops(state: RunState) -> list[drops.Drop]:
    def run(node, argv):
        return netns.run(in_host(state, node, state.nodes[node], argv), timeout=10)
    return drops.read(state, run)


def drop_rows(found: list[drops.Drop]) -> list[tuple]:
    now = time.time()
    rows = [("POD", "DIRECTION", "PEER", "PROTOCOL", "PORT", "PACKETS", "LAST", "POLICIES")]
    rows += [(d.pod, d.direction.lower(), d.peer, d.protocol, d.port or "-", d.packets,
              f"{human_duration(now - d.last)} ago", ",".join(d.policies) or "<none now>")
             for d in found]
    return rows


def _print_drops(state, args):
    """The connections NetworkPolicy denied, per pod and peer, newest first (every
    namespace; -n NAMESPACE or NAME narrows them to its pods or that pod)."""
    if not state.network_policy.enforced:
        raise TestbedError(f"nothing enforces NetworkPolicy in cluster {state.name}, so "
                           f"nothing is denied: {state.network_policy.note}")
    found = read_drops(state)
    if args.namespace != "default" or args.object:
        found = [d for d in found if d.pod.split("/")[0] == args.namespace and
                 (not args.object or d.pod.split("/", 1)[1] == args.object)]
    if args.output == "json":
        print(json.dumps([asdict(d) for d in found], indent=4))
    elif not found:
        print("No NetworkPolicy drops remembered (the last hour's).", file=sys.stderr)
    else:
        print(render_table(drop_rows(found)))
    return 0


def _print_events(state, args):
    """kubectl get events: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, oldest first; of one
    namespace's objects (and the cluster's own: nodes, daemons) or, with -A, all."""
    def namespace(obj):
        kind, _, rest = obj.partition("/")
        return rest.split("/")[0] if kind in ("pod", "service", "networkpolicy") else None
    found = [e for e in state.events if args.all_namespaces or
             namespace(e.object) in (None, args.namespace)]
    if args.output == "json":
        print(json.dumps([asdict(e) for e in found], indent=4))
        return 0
    if not found:
        print(f"No events found in {args.namespace} namespace.", file=sys.stderr)
        return 0
    now = time.time()
    rows = [("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE")]
    rows += [(human_duration(now - e.time), e.type, e.reason, e.object, e.message)
             for e in found]
    print(render_table(rows))
    return 0


def cmd_describe(args: argparse.Namespace) -> int | None:
    state = find_run(args.name)
    kind = ko.ALIASES.get(args.kind.lower())
    try:
        print(describe(state, args.kind, args.object, args.namespace,
                       services_by(state.mode, state.proxy_mode)))
    except TestbedError:
        waiting = _api_pod(state, args.object, args.namespace) if kind == "pods" else None
        if waiting is None:
            raise
        print(waiting)  # a pod only the API has: no sandbox, nothing in the kernel to show
        return 0
    if kind in ("pods", "nodes"):  # what the kernel holds there now
        if kind == "pods":
            wrap = netns.in_pod(find_pod(state, args.object, args.namespace)[1].netns, [])
        else:
            wrap = in_host(state, args.object, state.nodes[args.object], [])
        for title, argv in (("Interfaces", ["ip", "-br", "addr", "show"]),
                            ("Routes", ["ip", "route", "show"])):
            print(f"{title}:")
            print("\n".join(f"  {line}" for line in netns.run(wrap + argv).splitlines()))
    if ko.ALIASES.get(args.kind.lower()) == "networkpolicies" and state.network_policy.enforced:
        key = f"{args.namespace}/{args.object}"
        denied = [d for d in read_drops(state) if key in d.policies]
        print("Denied (the last hour's, as `testbed get drops`):")
        print("\n".join(f"  {line}" for line in render_table(drop_rows(denied)).splitlines())
              if denied else "  <none>")
    return 0


def _api_pod(state, name: str, namespace: str) -> str | None:
    """kubectl describe's words for a pod the API server has and no node runs, else None."""
    if not state.control_plane:
        return None
    client = admin_client(state.control_plane)
    pod = client.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    if pod is None:
        return None
    found = client.get(f"/api/v1/namespaces/{namespace}/events") or {"items": []}
    return describe_api_pod(pod, found["items"])


def cmd_logs(args: argparse.Namespace) -> int | None:
    """A container's output, as `kubectl logs` shows it, or any other log of the run by name;
    with no name, what has logs."""
    state = find_run(args.name)
    if args.pod is None:
        return _list_logs(state)
    path = _log_path(state, args)
    if args.previous:
        raise TestbedError(f'previous terminated container "{args.container or "?"}" in pod '
                           f'"{args.pod}" not found (this runtime does not restart containers)'
                           if path in logs.container_logs(state).values() else
                           f"{args.pod}: --previous is for a container's restarts")
    return follow(path) if args.follow else _print_file(path)


def _log_path(state, args) -> str:
    try:
        key, pod = find_pod(state, args.pod, args.namespace)
    except TestbedError as not_a_pod:
        others = logs.other_logs(state)
        if args.pod in others:
            return others[args.pod]
        raise TestbedError(f"{not_a_pod}; no log of cluster {state.name} is named "
                           f"{args.pod!r} either (`testbed logs` lists them)")
    containers = list(pod.containers)
    container = args.container
    if container is None:
        if len(containers) != 1:
            raise TestbedError(f"a container name must be specified for pod {pod.name}, "
                               f"choose one of: [{' '.join(containers)}] (-c)")
        container = containers[0]
    if container not in containers:
        raise TestbedError(f"container {container} is not valid for pod {pod.name} "
                           f"(containers: {', '.join(containers)})")
    args.container = container
    return logs.container_logs(state)[(key, container)]


def _print_file(path: str) -> int:
    try:
        with open(path, errors="replace") as f:
            sys.stdout.write(f.read())
    except FileNotFoundError:
        pass  # nothing written yet
    return 0


def follow(path: str, poll_s: float = 0.2) -> int:
    """What the file holds, then what is appended, until Ctrl-C (or SIGTERM) or the file goes
    (the cluster came down). SIGINT too when started in the background by a script, which
    inherits it ignored."""
    position = 0
    try:
        with signals_interrupt(signal.SIGINT):
            while True:
                try:
                    with open(path, errors="replace") as f:
                        f.seek(position)
                        chunk = f.read()
                        position = f.tell()
                except FileNotFoundError:
                    if position:
                        return 0
                    chunk = ""
                if chunk:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                time.sleep(poll_s)
    except (KeyboardInterrupt, Interrupted):
        return 0


def _list_logs(state) -> int:
    rows = [("NAME", "CONTAINER", "BYTES", "LAST WRITTEN")]
    now = time.time()

    def facts(path):
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return 0, "-"
        return stat.st_size, f"{human_duration(now - stat.st_mtime)} ago"
    rows += [(key, container, *facts(path))
             for (key, container), path in logs.container_logs(state).items()]
    rows += [(name, "", *facts(path)) for name, path in logs.other_logs(state).items()]
    print(render_table(rows))
    return 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """apply, delete, get, describe, logs"""
    for verb, what in (("apply", "create what Kubernetes manifests describe"),
                       ("delete", "remove what Kubernetes manifests describe")):
        p = sub.add_parser(verb, help=f"{what} (Namespace, Pod, Deployment, Service)")
        p.add_argument("-f", "--filename", required=True, help="a YAML file or a directory")
        p.add_argument("--name", help="cluster name, if several run")
        p.set_defaults(func=cmd_apply)

    get = sub.add_parser("get", help="list objects as kubectl does: pods, nodes, svc, "
                         "endpoints, endpointslices, netpol, ingress, namespaces, events; and "
                         "drops (what NetworkPolicy denied)")
    get.add_argument("what", metavar="RESOURCE",
                     help="pods, nodes, services (svc), endpoints (ep), endpointslices, "
                     "networkpolicies (netpol), ingresses (ing), ingressclasses, secrets, "
                     "namespaces (ns), events (ev), or drops")
    get.add_argument("object", nargs="?", metavar="NAME", help="just this object")
    get.add_argument("--name", help="cluster name, if several run")
    namespace_option(get)
    get.add_argument("-A", "--all-namespaces", action="store_true",
                     help="every namespace (adds a NAMESPACE column)")
    get.add_argument("-o", "--output", choices=["table", "wide", "json", "yaml"],
                     default="table")
    get.set_defaults(func=cmd_get)

    desc = sub.add_parser("describe", help="an object in words: describe "
                          "pod|node|svc|netpol|ingress NAME")
    desc.add_argument("kind", metavar="RESOURCE", help="pod, node, service (svc), "
                      "networkpolicy (netpol) or ingress (ing)")
    desc.add_argument("object", metavar="NAME")
    namespace_option(desc)
    desc.add_argument("--name", help="cluster name, if several run")
    desc.set_defaults(func=cmd_describe)

    log = sub.add_parser("logs", help="a container's output (logs [-n NS] POD [-c NAME]), a "
                         "daemon's or kube-proxy's log (logs bird@node1); no name: what has "
                         "logs")
    log.add_argument("pod", nargs="?", metavar="NAME", help="a pod, or a log's name")
    log.add_argument("-c", "--container")
    log.add_argument("-f", "--follow", action="store_true", help="keep printing what is added")
    log.add_argument("-p", "--previous", action="store_true",
                     help="the output of the container's previous run")
    namespace_option(log)
    log.add_argument("--name", help="cluster name, if several run")
    log.set_defaults(func=cmd_logs)
