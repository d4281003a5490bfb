"""`testbed describe`: a pod, Service or NetworkPolicy in words, laid out as `kubectl describe`
lays it out, plus what only the testbed can say: a pod's sandbox, the Services and policies
that pick it, and whether NetworkPolicy is enforced here.
"""
import time

from testbed.api import objects as ko
from testbed.api.objects import pod_status
from testbed.api.tables import find_pod, human_duration, render_table, since
from testbed.errors import TestbedError
from testbed.host.processes import pid_is
from testbed.kubeproxy.applier import ProxyApplier
from testbed.kubeproxy.services import endpoints as service_endpoints
from testbed.kubeproxy.services import service_ports
from testbed.model.records import PodRecord
from testbed.model.state import RunState
from testbed.policy import semantics as pol

DESCRIBED = ("pods", "nodes", "services", "networkpolicies", "ingresses")  # of objects.py's
# who reports an event, as kubectl's FROM column names it
SOURCES = {"Scheduled": "default-scheduler", "Started": "kubelet", "Killing": "kubelet",
           "PolicyApplied": "policy", "PolicyRemoved": "policy", "DaemonDied": "supervisor",
           "Restarted": "supervisor"}


def _field(name, value, width=14):
    return f"{name + ':':<{width}}{value}"


def _labels(labels):
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def describe(state: RunState, kind: str, name: str, namespace: str = "default",
             services: type[ProxyApplier] | None = None) -> str:
    """kubectl describe of one object; `services`: the applier class serving the run's
    Services (modes.services_by), whose chains a Service's description lists."""
    resource = ko.ALIASES.get(kind.lower())
    if resource not in DESCRIBED:
        raise TestbedError(f"describe takes pod, node, service (svc), networkpolicy "
                           f"(netpol) or ingress (ing), not {kind!r}")
    if resource == "pods":
        return describe_pod(state, *find_pod(state, name, namespace))
    if resource == "nodes":
        if name not in state.nodes:
            raise TestbedError(f'nodes "{name}" not found (nodes: {", ".join(state.nodes)})')
        return describe_node(state, name)
    key = f"{namespace}/{name}"
    if resource == "ingresses":
        if key not in state.ingresses:
            raise TestbedError(f'ingresses "{name}" not found in namespace {namespace}')
        return describe_ingress(state, key)
    table = state.services if resource == "services" else state.policies
    if key not in table:
        raise TestbedError(f'{resource} "{name}" not found in namespace {namespace}')
    return describe_service(state, key, services) if resource == "services" else \
        describe_policy(state, key)


def describe_pod(state: RunState, key: str, rec: PodRecord) -> str:
    node = state.nodes.get(rec.node)
    _ready, status = pod_status(rec)
    lines = [_field("Name", rec.name), _field("Namespace", rec.namespace),
             _field("Node", f"{rec.node}/{node.ip if node else '?'}"),
             _field("Labels", _labels(rec.labels)), _field("Status", status),
             _field("IP", rec.ip or "<none>"),
             # as kubectl describe: every address of status.podIPs
             "IPs:" + ("" if rec.addresses else "          <none>"),
             *(f"  IP:  {ip}" for ip in rec.addresses),
             _field("Sandbox", f"{rec.netns} (ip netns exec {rec.netns} ...)"),
             "Containers:"]
    for cname, entry in rec.containers.items():
        alive = pid_is(entry.pid, entry.start)
        lines.append(f"  {cname}:")
        if entry.command:
            lines.append(f"    {_field('Command', ' '.join(entry.command), 10)}")
        running = f"Running (pid {entry.pid})" if alive else "Terminated"
        lines.append(f"    {_field('State', running, 10)}")
    ports = rec.ports
    if ports:
        lines.append(_field("Named ports", ", ".join(f"{n}={p}"
                                                     for n, p in sorted(ports.items()))))
    picked = [k for k in sorted(state.services)
              if any(pod_key == key for eps in service_endpoints(state, k).values()
                     for pod_key, _ip, _port in eps)]
    lines.append(_field("Services", ", ".join(picked) or "<none>"))
    lines.append("NetworkPolicy:")
    every = pol.policies(state)
    for direction in ("Ingress", "Egress"):
        isolating = pol.isolating(every, rec, direction)
        text = ("isolated by " + ", ".join(f"{p.namespace}/{p.name}" for p in isolating)) \
            if isolating else "not isolated (all allowed)"
        lines.append(f"  {direction + ':':<9}{text}")
    lines.append(_enforcement(state))
    return "\n".join(lines + events(state, f"pod/{key}"))


def describe_api_pod(pod: dict, api_events: list[dict], now: float | None = None) -> str:
    """A pod the API server has and no node runs (Pending: its node unknown, its namespace
    not taken), from the API's object and Events, as kubectl describe shows it."""
    now = time.time() if now is None else now
    meta, spec = pod["metadata"], pod.get("spec") or {}
    _ready, status, _restarts = ko.pod_columns(pod)
    lines = [_field("Name", meta["name"]), _field("Namespace", meta.get("namespace", "")),
             _field("Node", spec.get("nodeName") or "<none>"),
             _field("Labels", _labels(meta.get("labels"))), _field("Status", status),
             _field("IP", (pod.get("status") or {}).get("podIP") or "<none>"),
             _field("Sandbox", "<none> (no node runs this pod)"), "Containers:"]
    for container in spec.get("containers") or []:
        lines += [f"  {container.get('name', '')}:",
                  f"    {_field('Image', container.get('image', ''), 10)}"]
    lines.append("Conditions:")
    lines += [f"  {c.get('type', ''):<16}{c.get('status', '')}" +
              (f"  {c.get('reason', '')}: {c.get('message', '')}" if c.get("reason") else "")
              for c in (pod.get("status") or {}).get("conditions") or []] or ["  <none>"]
    mine = [e for e in api_events if (e.get("involvedObject") or {}).get("name") == meta["name"]
            and (e.get("involvedObject") or {}).get("kind") == "Pod"]
    return "\n".join(lines + _events_section([
        (e.get("type", ""), e.get("reason", ""), since(e.get("lastTimestamp"), now),
         (e.get("source") or {}).get("component", ""), e.get("message", "")) for e in mine]))


def describe_node(state: RunState, name: str) -> str:
    rec = state.nodes[name]
    lines = [_field("Name", name),
             _field("Labels", _labels({"kubernetes.io/hostname": name, ko.RACK_LABEL: rec.rack})),
             "Addresses:", *(f"  InternalIP:  {ip}" for ip in rec.addresses_by_family),
             f"  Hostname:    {name}",
             _field("PodCIDR", (rec.lease or "<none>").split(",")[0]),
             _field("PodCIDRs", rec.lease or "<none>"), _field("Mode", state.mode or "<none>")]
    lines += [f"  {key}: {value}" for key, value in sorted(rec.details.items())]
    pods = [(p.namespace, p.name, p.ip) for p in state.pods.values() if p.node == name]
    lines.append(f"Non-terminated Pods:  ({len(pods)} in total)")
    lines += [f"  {ns:<14}{pod:<32}{ip}" for ns, pod, ip in sorted(pods)]
    daemons = {label: d for label, d in state.daemons.items() if d.node == name}
    lines.append("Daemons:" + ("" if daemons else "      <none>"))
    lines += [f"  {label:<28}{d.state} (pid {d.pid})" for label, d in sorted(daemons.items())]
    return "\n".join(lines + events(state, f"node/{name}", *(
        f"daemon/{label}" for label in daemons)))


def events(state: RunState, *objects: str) -> list[str]:
    """kubectl describe's Events table of these objects, oldest first."""
    now = time.time()
    return _events_section([(e.type, e.reason, human_duration(now - e.time),
                             SOURCES.get(e.reason, "testbed"), e.message)
                            for e in state.events if e.object in objects])


def _events_section(found: list[tuple]) -> list[str]:
    """kubectl describe's Events section of (type, reason, age, from, message) rows."""
    if not found:
        return ["Events:       <none>"]
    rows = [("Type", "Reason", "Age", "From", "Message"), ("----", "------", "----", "----",
                                                           "-------")] + found
    return ["Events:"] + [f"  {line}" for line in render_table(rows).splitlines()]


def describe_service(state: RunState, key: str, services: type[ProxyApplier] | None = None) -> str:
    obj = next(o for o in ko.services(state, key.split("/", 1)[0])
               if o["metadata"]["name"] == key.split("/", 1)[1])
    spec = obj["spec"]
    lines = [_field("Name", obj["metadata"]["name"], 18),
             _field("Namespace", obj["metadata"]["namespace"], 18),
             _field("Selector", _labels(spec.get("selector")), 18),
             _field("Type", spec["type"], 18)]
    if spec["type"] == "ExternalName":
        lines.append(_field("External Name", spec["externalName"], 18))
        return "\n".join(lines)
    lines.append(_field("IP", spec["clusterIP"], 18))
    if spec.get("externalIPs"):
        lines.append(_field("External IPs", ",".join(spec["externalIPs"]), 18))
    ingress = obj["status"]["loadBalancer"].get("ingress")
    if ingress:
        lines.append(_field("LoadBalancer Ingress", ingress[0]["ip"], 22))
    found = service_endpoints(state, key)
    for port in spec.get("ports", []):
        label = port.get("name", "<unset>")
        lines.append(_field("Port", f"{label}  {port['port']}/{port['protocol']}", 18))
        lines.append(_field("TargetPort", f"{port['targetPort']}/{port['protocol']}", 18))
        if port.get("nodePort"):
            lines.append(_field("NodePort", f"{label}  {port['nodePort']}/{port['protocol']}",
                                18))
        eps = found[port.get("name") or str(port["port"])]
        lines.append(_field("Endpoints", ",".join(f"{ip}:{t}" for _k, ip, t in eps)
                            or "<none>", 18))
    lines.append(_field("Session Affinity", spec["sessionAffinity"], 18))
    for name, value in (("External Traffic Policy", spec.get("externalTrafficPolicy")),
                        ("Internal Traffic Policy", spec.get("internalTrafficPolicy")),
                        ("HealthCheck NodePort", spec.get("healthCheckNodePort")),
                        ("LoadBalancer Source Ranges",
                         ",".join(spec.get("loadBalancerSourceRanges", [])))):
        if value:
            lines.append(_field(name, value, 26))
    chains = proxy_chains(state, key, services) if services is not None else []
    return "\n".join(lines + chains + events(state, f"service/{key}"))


def describe_ingress(state: RunState, key: str) -> str:
    """kubectl describe ingress: class, TLS, and each rule's paths with their backends'
    endpoints (what nginx sends the path to)."""
    namespace, name = key.split("/", 1)
    obj = next(o for o in ko.ingresses(state, namespace) if o["metadata"]["name"] == name)
    spec = obj["spec"]

    def backend(b):
        svc = b["service"]
        port = svc["port"].get("number", svc["port"].get("name"))
        skey = f"{namespace}/{svc['name']}"
        if skey not in state.services:
            return f"{svc['name']}:{port} (<error: services \"{svc['name']}\" not found>)"
        record = state.services[skey]
        found = service_endpoints(state, skey)
        chosen = next((p for p in record.ports if p.port == port or p.name == port), None)
        eps = found[chosen.name or str(chosen.port)] if chosen else []
        return f"{svc['name']}:{port} ({','.join(f'{ip}:{t}' for _k, ip, t in eps) or '<none>'})"

    address = ",".join(i["ip"] for i in obj["status"]["loadBalancer"].get("ingress", []))
    lines = [_field("Name", name, 18), _field("Labels", "<none>", 18),
             _field("Namespace", namespace, 18), _field("Address", address, 18),
             _field("Ingress Class", spec.get("ingressClassName", "<none>"), 18),
             _field("Default backend", backend(spec["defaultBackend"])
                    if "defaultBackend" in spec else "<default>", 18)]
    if spec.get("tls"):
        lines.append("TLS:")
        lines += [f"  {t.get('secretName', 'SNI')} terminates {','.join(t['hosts'])}"
                  for t in spec["tls"]]
    rows = [("Host", "Path", "Backends"), ("----", "----", "--------")]
    for rule in spec.get("rules", []):
        rows.append((rule.get("host", "*"), "", ""))
        rows += [("", p["path"], backend(p["backend"]))
                 for p in rule.get("http", {}).get("paths", [])]
    lines += ["Rules:"] + [f"  {line}" for line in render_table(rows).splitlines()]
    return "\n".join(lines + events(state, f"ingress/{key}"))


def proxy_chains(state: RunState, key: str, services: type[ProxyApplier]) -> list[str]:
    """What serves the Service on every node, per port, as `services` (the run's applier
    class: kube-proxy's mode or its replacement) describes it: the chains kube-proxy writes
    (names as it hashes them), the IPVS virtual server, the BPF maps."""
    namespace, name = key.split("/", 1)
    return [line for sp in service_ports(state) if (sp.namespace, sp.name) == (namespace, name)
            for line in services.describe(sp)]


def _peer_lines(peer, indent):
    pad = " " * indent
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return [f"{pad}IPBlock:", f"{pad}  CIDR: {block['cidr']}",
                f"{pad}  Except: {', '.join(block.get('except', []))}"]
    out = []
    if "namespaceSelector" in peer:
        out.append(f"{pad}NamespaceSelector: {_selector(peer['namespaceSelector'])}")
    if "podSelector" in peer:
        out.append(f"{pad}PodSelector: {_selector(peer['podSelector'])}")
    return out


def _selector(sel):
    parts = [f"{k}={v}" for k, v in sorted(sel.get("matchLabels", {}).items())]
    parts += [f"{e['key']} {e['operator'].lower()} ({','.join(e['values'])})"
              if e.get("values") else f"{e['key']} {e['operator'].lower()}"
              for e in sel.get("matchExpressions", [])]
    return ",".join(parts) or "<none> (Allowing the specific traffic to all pods in this " \
        "namespace)"


def describe_policy(state: RunState, key: str) -> str:
    namespace, name = key.split("/", 1)
    obj = next(o for o in ko.network_policies(state, namespace) if o["metadata"]["name"] == name)
    spec = obj["spec"]
    lines = [_field("Name", name), _field("Namespace", namespace), "Spec:",
             f"  PodSelector:     {_selector(spec['podSelector'])}"]
    for direction, rules_key, peers_key, verb in (("Ingress", "ingress", "from", "From"),
                                                  ("Egress", "egress", "to", "To")):
        if direction not in spec["policyTypes"]:
            lines.append(f"  Not affecting {direction.lower()} traffic")
            continue
        rules = spec.get(rules_key, [])
        if not rules:
            lines.append(f"  Allowing {direction.lower()} traffic:")
            lines.append("    <none> (Selected pods are isolated for "
                         f"{direction.lower()} connectivity)")
            continue
        lines.append(f"  Allowing {direction.lower()} traffic:")
        for i, rule in enumerate(rules):
            if i:
                lines.append("    ----------")
            for port in rule.get("ports", []) or [None]:
                if port is None:
                    lines.append("    To Port: <any> (traffic allowed to all ports)")
                else:
                    number = port.get("port", "<any>")
                    if port.get("endPort"):
                        number = f"{number}-{port['endPort']}"
                    lines.append(f"    To Port: {number}/{port['protocol']}")
            peers = rule.get(peers_key, [])
            if not peers:
                lines.append(f"    {verb}: <any> (traffic not restricted by "
                             f"{'source' if verb == 'From' else 'destination'})")
            for peer in peers:
                lines.append(f"    {verb}:")
                lines += _peer_lines(peer, 6)
    lines.append(f"  Policy Types: {', '.join(spec['policyTypes'])}")
    selected = [k for k, rec in sorted(state.pods.items())
                if pol.selects(state.policies[key].policy, rec)]
    lines.append(_field("Selects pods", ", ".join(selected) or "<none>"))
    lines.append(_enforcement(state))
    return "\n".join(lines + events(state, f"networkpolicy/{key}"))


def _enforcement(state):
    facts = state.network_policy
    if facts.enforced:
        return f"# NetworkPolicy is enforced here: {facts.note}"
    return f"# NetworkPolicy is not enforced here: {facts.note or 'no CNI mode'}"
