"""`testbed bpf NODE`: a node's eBPF datapath in readable form — its programs and where they
are attached, the endpoint, ipcache (tunnel) and service maps with the names behind their
numbers, the size of its CT map, and the programs' counters by reason."""
import collections

from testbed.api.tables import render_table as _render
from testbed.kubeproxy.services import service_ports
from testbed.manifests.families import join_host_port
from testbed.model.state import RunState
from testbed.modes.ebpf import maps


def render_table(header: list[str], rows: list) -> str:
    return _render([header, *rows]) if rows else _render([header]) + "\n(none)"


def _service_names(state: RunState, node_ips: list[str]) -> dict[tuple, str]:
    """{(address, port, protocol): "<Service port> (<how it is reached>)"}, the node ports
    on the node's address of each family."""
    names = {}
    for sp in service_ports(state):
        names[(sp.cluster_ip, sp.port, sp.protocol)] = f"{sp.id} (ClusterIP)"
        for node_ip in node_ips if sp.node_port else []:
            names[(node_ip, sp.node_port, sp.protocol)] = f"{sp.id} (NodePort)"
        for ip in sp.load_balancer_ips:
            names[(ip, sp.port, sp.protocol)] = f"{sp.id} (LoadBalancer)"
        for ip in sp.external_ips:
            names[(ip, sp.port, sp.protocol)] = f"{sp.id} (externalIP)"
    return names


def _what_prefix(state: RunState, prefix: str, identity: int) -> str:
    address, length = prefix.split("/")
    if identity == maps.ID_HOST:
        return "this node (host)"
    single = length in ("32", "128")
    for node, rec in state.nodes.items():
        if prefix in (rec.lease or "").split(","):
            return f"pod CIDR of {node}"
        if single and address in (rec.ip, rec.ip_v6):
            return f"node {node} (remote-node)"
    pod = next((p for p in state.pods.values() if single and address in p.addresses), None)
    return f"pod {pod.key}" if pod else ""


def report(state: RunState, node: str, maps_dir: str, programs: list[tuple[str, str]]) -> str:
    """programs: [(program, where it is attached)]."""
    pods = {ip: p for p in state.pods.values() if not p.host_network for ip in p.addresses}
    out = [f"# {node}: programs (pinned under {maps_dir.rsplit('/', 1)[0]}/progs)",
           render_table(["PROGRAM", "ATTACHED TO"], programs)]

    rows = []
    for key, value in maps.dump(maps_dir, maps.ENDPOINTS):
        ep = maps.decode_endpoint(key, value)
        pod = pods.get(ep["ip"])
        lxc = pod.result["interfaces"][0]["name"] if pod and pod.result else ""
        rows.append([ep["ip"], pod.key if pod else "?", ep["identity"],
                     f"{lxc} ({ep['ifindex']})", ep["pod_mac"], ep["lxc_mac"]])
    out += [f"\n# endpoints ({maps.ENDPOINTS}): local pods, reached by redirect_peer",
            render_table(["IP", "POD", "IDENTITY", "LXC (IFINDEX)", "POD MAC", "LXC MAC"],
                         sorted(rows))]

    rows = []
    for key, value in maps.dump(maps_dir, maps.IPCACHE):
        entry = maps.decode_ipcache(key, value)
        rows.append([entry["prefix"], entry["identity"], entry["tunnel_endpoint"] or "-",
                     _what_prefix(state, entry["prefix"], entry["identity"])])
    out += [f"\n# ipcache ({maps.IPCACHE}): identity and tunnel endpoint (the node it lives "
            "on) per prefix",
            render_table(["PREFIX", "IDENTITY", "TUNNEL ENDPOINT", "WHAT"], sorted(rows))]

    names = _service_names(state, state.nodes[node].addresses_by_family)
    for family in state.families:  # the maps of each family the cluster has
        out += _services(maps_dir, maps.SERVICE_MAPS[family], names)

    rows = []
    for key, per_cpu in maps.dump(maps_dir, maps.METRICS):
        m = maps.decode_metrics(key, per_cpu)
        if m["packets"]:
            rows.append([m["program"], m["reason"], m["packets"], m["bytes"]])
    out += [f"\n# counters ({maps.METRICS}): packets by program and what it did",
            render_table(["PROGRAM", "REASON", "PACKETS", "BYTES"], rows)]
    return "\n".join(out)


def _services(maps_dir: str, names_of: maps.ServiceMaps, names: dict) -> list[str]:
    """One family's service maps (frontends, their backends) and the size of its CT map."""
    backends = {b["id"]: b for b in (maps.decode_backend(k, v) for k, v in
                                     maps.dump(maps_dir, names_of.backends))}
    slots: dict = collections.defaultdict(dict)
    masters = {}
    for key, value in maps.dump(maps_dir, names_of.services):
        svc = maps.decode_service(key, value)
        front = (svc["address"], svc["port"], svc["protocol"])
        if svc["slot"] == 0:
            masters[front] = svc
        else:
            slots[front][svc["slot"]] = svc["backend_id"]
    rows = []
    for front, svc in sorted(masters.items()):
        chosen = [backends.get(slots[front].get(s)) for s in range(1, svc["count"] + 1)]
        listed = ", ".join(join_host_port(b["ip"], b["port"]) if b else "?" for b in chosen)
        flags = [f for bit, f in maps.SVC_FLAG_NAMES if svc["flags"] & bit]
        empty = "(none: refused)" if svc["flags"] & maps.SVC_REJECT else "(none: dropped)"
        rows.append([f"{join_host_port(front[0], front[1])}/{front[2]}", names.get(front, "?"),
                     svc["rev_nat"], ",".join(flags) or "-", listed or empty])
    flows = maps.dump(maps_dir, names_of.conntrack)
    replies = sum(1 for key, _ in flows if maps.ct_direction(key) == maps.CT_REPLY)
    return [f"\n# services ({names_of.services}, {names_of.backends}): what replaces "
            "kube-proxy",
            render_table(["FRONTEND", "SERVICE", "REV-NAT", "FLAGS", "BACKENDS"], rows),
            f"\n# conntrack ({names_of.conntrack}): {len(flows) - replies} Service flows, "
            f"{replies} reply entries"]


def attached_programs(state: RunState, node: str, tunnel: bool) -> list[tuple[str, str]]:
    """Where the mode attached its programs on a node, as its records say."""
    lxcs = sorted(p.result["interfaces"][0]["name"] for p in state.pods.values()
                  if p.node == node and not p.host_network and p.result)
    rows = [("cil_from_netdev", "eth0 (tc ingress)"),
            ("cil_from_host", "cilium_host (tc egress)")]
    if tunnel:
        rows.append(("cil_from_overlay", "cilium_vxlan (tc ingress)"))
    rows.append(("cil_from_container", f"{len(lxcs)} lxc devices (tc ingress): " +
                 (", ".join(lxcs) if lxcs else "none")))
    return rows

