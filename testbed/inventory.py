"""Tables of a run's pods and nodes, read from its state (for `get` and the interactive CLI)."""


def pod_rows(data):
    rows = [("NAME", "NAMESPACE", "NODE", "IP", "CONTAINERS")]
    for name, rec in sorted(data["pods"].items()):
        rows.append((name, rec["namespace"], rec["node"], rec["ip"] or "-",
                     ",".join(rec["containers"]) or "-"))
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
