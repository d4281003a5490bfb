"""Tables of a run's pods and nodes, read from its state (for `get` and the interactive CLI)."""
from .state import pid_is


def pod_status(rec):
    """(READY, STATUS) as kubectl prints them: containers running of all, and the phase."""
    running = sum(1 for c in rec["containers"].values() if pid_is(c["pid"], c["start"]))
    total = len(rec["containers"])
    if not rec["ip"] or total == 0:
        status = "ContainerCreating"
    else:
        status = "Running" if running == total else "Error"
    return f"{running}/{total}", status


def pod_rows(data):
    rows = [("NAME", "NAMESPACE", "READY", "STATUS", "IP", "NODE", "CONTAINERS")]
    for name, rec in sorted(data["pods"].items()):
        ready, status = pod_status(rec)
        rows.append((name, rec["namespace"], ready, status, rec["ip"] or "<none>", rec["node"],
                     ",".join(rec["containers"]) or "-"))
    return rows


def service_rows(data):
    rows = [("NAME", "NAMESPACE", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)")]
    for key, rec in sorted(data.get("services", {}).items()):
        namespace, name = key.split("/", 1)
        ports = ",".join(f"{p['port']}" + (f":{p['node_port']}" if p["node_port"] else "") +
                         f"/{p['protocol']}" for p in rec["ports"]) or "<none>"
        external = rec["external_name"] or rec.get("load_balancer_ip") or \
            ("<pending>" if rec["type"] == "LoadBalancer" else "<none>")
        rows.append((name, namespace, rec["type"], rec["cluster_ip"] or "<none>", external,
                     ports))
    return rows


def endpoint_rows(data):
    from .services import endpoints
    rows = [("NAME", "NAMESPACE", "ENDPOINTS")]
    for key in sorted(data.get("services", {})):
        namespace, name = key.split("/", 1)
        found = sorted({f"{ip}:{port}" for eps in endpoints(data, key).values()
                        for _pod, ip, port in eps})
        rows.append((name, namespace, ",".join(found) or "<none>"))
    return rows


def policy_rows(data):
    from .policy import policies
    enforced = "yes" if data.get("network_policy", {}).get("enforced") else "no"
    rows = [("NAME", "NAMESPACE", "POD-SELECTOR", "POLICY-TYPES", "ENFORCED")]
    for p in policies(data):
        rows.append((p.name, p.namespace, str(p.pod_selector), ",".join(p.policy_types),
                     enforced))
    return rows


def node_rows(data):
    rows = [("NAME", "RACK", "IP", "POD SUBNET", "MODE")]
    for name, rec in data["nodes"].items():
        rows.append((name, rec["rack"], rec["ip"], rec.get("lease", "-"), data.get("mode", "-")))
    return rows


def render_table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)
