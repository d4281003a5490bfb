"""kubectl's tables of a run's objects (for `get` and the interactive CLI), and finding a pod by
the name a user types.

Columns are kubectl's: `get pods` shows NAME READY STATUS RESTARTS AGE of one namespace, `-A`
adds NAMESPACE in front, `-o wide` adds IP, NODE and the pod's SANDBOX (its network namespace,
for `ip netns exec`). Tables are built from the objects of objects.py, so that the table and
`-o json` never disagree.
"""
import calendar
import time
from collections.abc import Sequence

from testbed.api.objects import RACK_LABEL, pod_columns
from testbed.errors import TestbedError
from testbed.model.records import PodRecord
from testbed.model.state import RunState


def human_duration(seconds: float) -> str:
    """kubectl's AGE: 45s, 3m20s, 25m, 5h10m, 30h, 3d4h, 20d, 2y30d."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" + (f"{s % 60}s" if s % 60 else "")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" + (f"{minutes % 60}m" if minutes % 60 else "")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d" + (f"{hours % 24}h" if hours % 24 else "")
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y" + (f"{days % 365}d" if days % 365 and days < 365 * 8 else "")


def since(stamp: str | None, now: float) -> str:
    """How long ago an RFC 3339 timestamp of the API was, as kubectl prints ages."""
    if not stamp:
        return "<unknown>"
    return human_duration(now - calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def _age(obj, now):
    return since(obj["metadata"].get("creationTimestamp"), now)


def _ports(svc):
    ports = svc["spec"].get("ports", [])
    return ",".join(f"{p['port']}" + (f":{p['nodePort']}" if p.get("nodePort") else "") +
                    f"/{p['protocol']}" for p in ports) or "<none>"


def selector_text(sel: dict | None) -> str:
    parts = [f"{k}={v}" for k, v in sorted((sel or {}).get("matchLabels", {}).items())]
    parts += [f"{e['key']} {e['operator']} ({','.join(e['values'])})" if e.get("values")
              else f"{e['key']} {e['operator']}" for e in (sel or {}).get("matchExpressions", [])]
    return ",".join(parts) or "<none>"


def rows(kind: str, objects: list, state: RunState | None, all_namespaces: bool = False,
         wide: bool = False, now: float | None = None) -> list:
    """kubectl's table of `objects` (objects.py's of one resource kind), ages as of `now`."""
    now = time.time() if now is None else now
    head, body = [], []
    if kind == "pods":
        head = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + \
            (["IP", "NODE", "SANDBOX"] if wide else [])
        for obj in objects:
            meta = obj["metadata"]
            ready, status, restarts = pod_columns(obj)
            row = [meta["name"], ready, status, restarts, _age(obj, now)]
            if wide:  # the sandbox: where the pod runs, if its node made it one
                rec = state.pods.get(f"{meta['namespace']}/{meta['name']}")
                row += [obj.get("status", {}).get("podIP") or "<none>",
                        obj["spec"].get("nodeName") or "<none>", rec.netns if rec else "<none>"]
            body.append(row)
    elif kind == "nodes":
        head = ["NAME", "STATUS", "RACK", "INTERNAL-IP", "POD-CIDR", "AGE"] + \
            (["MODE", "ZONE"] if wide else [])
        for obj in objects:
            row = [obj["metadata"]["name"], "Ready", state.nodes[obj["metadata"]["name"]].rack,
                   obj["status"]["addresses"][0]["address"],
                   ",".join(obj["spec"].get("podCIDRs") or []) or "<none>", _age(obj, now)]
            body.append(row + ([state.mode or "-", obj["metadata"]["labels"][RACK_LABEL]]
                               if wide else []))
    elif kind == "services":
        head = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + \
            (["SELECTOR"] if wide else [])
        for obj in objects:
            spec = obj["spec"]
            # as kubectl: load-balancer addresses, then spec.externalIPs
            ingress = obj.get("status", {}).get("loadBalancer", {}).get("ingress", [])
            addresses = [i["ip"] for i in ingress] + spec.get("externalIPs", [])
            external = spec.get("externalName") or ",".join(addresses) or (
                "<pending>" if spec["type"] == "LoadBalancer" else "<none>")
            row = [obj["metadata"]["name"], spec["type"], spec.get("clusterIP", "<none>"),
                   external, _ports(obj), _age(obj, now)]
            if wide:
                row.append(",".join(f"{k}={v}" for k, v in sorted(
                    spec.get("selector", {}).items())) or "<none>")
            body.append(row)
    elif kind == "endpoints":
        head = ["NAME", "ENDPOINTS", "AGE"]
        for obj in objects:
            found = sorted({f"{a['ip']}:{p['port']}" for s in obj.get("subsets", [])
                            for a in s["addresses"] for p in s["ports"]})
            body.append([obj["metadata"]["name"], ",".join(found) or "<none>",
                         _age(obj, now)])
    elif kind == "endpointslices":
        head = ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
        for obj in objects:
            addresses = [a for ep in obj["endpoints"] for a in ep["addresses"]]
            shown = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..."
                                               if len(addresses) > 3 else "")
            body.append([obj["metadata"]["name"], obj["addressType"],
                         ",".join(str(p["port"]) for p in obj["ports"]) or "<unset>",
                         shown or "<unset>", _age(obj, now)])
    elif kind == "ingresses":
        head = ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
        for obj in objects:
            spec = obj["spec"]
            hosts = [r["host"] for r in spec.get("rules", []) if "host" in r]
            address = ",".join(i.get("ip", "") for i in obj.get("status", {})
                               .get("loadBalancer", {}).get("ingress", []))
            body.append([obj["metadata"]["name"], spec.get("ingressClassName", "<none>"),
                         ",".join(hosts) or "*", address,
                         "80, 443" if spec.get("tls") else "80", _age(obj, now)])
    elif kind == "ingressclasses":
        head = ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
        body = [[o["metadata"]["name"], o["spec"]["controller"], "<none>", _age(o, now)]
                for o in objects]
    elif kind == "secrets":
        head = ["NAME", "TYPE", "DATA", "AGE"]
        body = [[o["metadata"]["name"], o.get("type", "Opaque"), str(len(o.get("data") or {})),
                 _age(o, now)]
                for o in objects]
    elif kind == "networkpolicies":
        head = ["NAME", "POD-SELECTOR", "AGE"] + (["POLICY-TYPES", "ENFORCED"] if wide else [])
        enforced = "yes" if state.network_policy.enforced else "no"
        for obj in objects:
            row = [obj["metadata"]["name"], selector_text(obj["spec"]["podSelector"]),
                   _age(obj, now)]
            body.append(row + ([",".join(obj["spec"].get("policyTypes") or ["Ingress"]), enforced]
                               if wide else []))
    elif kind == "namespaces":
        head = ["NAME", "STATUS", "AGE"]
        body = [[o["metadata"]["name"], o.get("status", {}).get("phase", "Active"), _age(o, now)]
                for o in objects]
    if all_namespaces and kind not in ("nodes", "namespaces"):
        head = ["NAMESPACE"] + head
        body = [[o["metadata"]["namespace"]] + row for o, row in zip(objects, body)]
    return [tuple(head)] + [tuple(r) for r in body]


def render_table(rows: Sequence[Sequence[object]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


def find_pod(state: RunState, name: str, namespace: str = "default") -> tuple[str, PodRecord]:
    """(key, record) of the pod a user names: NAME in `namespace`, or NAMESPACE/NAME.
    Raises TestbedError naming the pods of that namespace."""
    if "/" in name:
        namespace, name = name.split("/", 1)
    key = f"{namespace}/{name}"
    if key in state.pods:
        return key, state.pods[key]
    elsewhere = sorted(k for k, r in state.pods.items() if r.name == name)
    hint = f"; there is {', '.join(elsewhere)} (use -n)" if elsewhere else ""
    raise TestbedError(f'pods "{name}" not found in namespace {namespace}{hint}')
