"""What the ebpf datapath does with a packet that entered a node, read from that node's maps as
its programs read them (`testbed trace`): the program that ran, the Service it translated, and
where it sent the packet — into a pod, out of eth0 by the FIB, into the tunnel, or to the
node's stack."""
import ipaddress

from testbed.manifests.families import family_of
from testbed.manifests.families import join_host_port as hostport
from testbed.model.state import RunState
from testbed.modes.ebpf import maps

PROGRAM_AT = {"eth0": "cil_from_netdev", "cilium_vxlan": "cil_from_overlay",
              "cilium_host": "cil_from_host"}


def _program(in_port: str) -> str | None:
    if in_port.startswith("lxc"):
        return "cil_from_container"
    return PROGRAM_AT.get(in_port)


def _longest_prefix(entries: list[dict], ip: str) -> dict | None:
    address = ipaddress.ip_address(ip)
    matching = [e for e in entries if ipaddress.ip_network(e["prefix"]).version ==
                address.version and address in ipaddress.ip_network(e["prefix"])]
    return max(matching, key=lambda e: int(e["prefix"].split("/")[1]), default=None)


def _chosen_backend(maps_dir: str, names: maps.ServiceMaps, flow: dict,
                    protocol: str) -> dict | None:
    """The backend the programs chose for this flow, as its CT_SERVICE entry names it."""
    key = maps.ct_key(flow["src"], flow["dst"], flow["sport"], flow["dport"], protocol,
                      maps.CT_SERVICE)
    value = maps.lookup(maps_dir, names.conntrack, key)
    if value is None:
        return None
    backend_id = maps.ct_backend(value)
    raw = maps.lookup(maps_dir, names.backends, maps.backend_key(backend_id))
    return maps.decode_backend(maps.backend_key(backend_id), raw) if raw else None


def explain(state: RunState, node: str, maps_dir: str, in_port: str, flow: dict,
            tunnel: bool) -> list[str]:
    """One line per decision, as the programs would take them."""
    program = _program(in_port)
    if program is None or flow.get("protocol") not in ("TCP", "UDP", "ICMP"):
        return []
    steps = [f"{program} on {in_port} (tc {'egress' if program == 'cil_from_host' else 'ingress'})"]
    dst, dport = flow["dst"], flow.get("dport") or 0
    protocol = flow["protocol"].lower()
    names = maps.SERVICE_MAPS[family_of(dst)]  # the Service maps of the packet's family
    shown = hostport(dst, dport)
    if protocol in ("tcp", "udp") and dport:
        front = (dst, dport, protocol)
        masters = {(s["address"], s["port"], s["protocol"]): s for s in
                   (maps.decode_service(k, v) for k, v in maps.dump(maps_dir, names.services))
                   if s["slot"] == 0}
        svc = masters.get(front)
        if svc is not None:
            if not svc["count"]:
                done = "refused with ICMP port unreachable (it has no endpoint)" \
                    if svc["flags"] & maps.SVC_REJECT else \
                    "dropped (none of its endpoints is here, under a traffic policy Local)"
                return steps + [f"service {shown}/{protocol} has no backend here: {done}"]
            chosen = _chosen_backend(maps_dir, names, flow, protocol)
            if chosen is None:  # not in the CT map (yet, or any more)
                return steps + [f"service {shown}/{protocol} in {names.services}: DNAT to "
                                f"one of {svc['count']} backends, chosen per flow"]
            steps.append(f"service {shown}/{protocol} in {names.services}: DNAT to "
                         f"{hostport(chosen['ip'], chosen['port'])}, one of {svc['count']} "
                         f"backends, the flow's choice in {names.conntrack}")
            dst = chosen["ip"]
    endpoints = {e["ip"]: e for e in (maps.decode_endpoint(k, v)
                                      for k, v in maps.dump(maps_dir, maps.ENDPOINTS))}
    ep = endpoints.get(dst)
    if ep is not None:
        pod = next((p.key for p in state.pods.values() if dst in p.addresses and p.node == node),
                   "?")
        how = "bpf_redirect to its lxc" if program == "cil_from_host" else \
            "bpf_redirect_peer into its namespace (no host stack)"
        return steps + [f"endpoint {dst} ({pod}, identity {ep['identity']}) in "
                        f"{maps.ENDPOINTS}: {how}"]
    entry = _longest_prefix([maps.decode_ipcache(k, v)
                             for k, v in maps.dump(maps_dir, maps.IPCACHE)], dst)
    own = state.nodes[node].ip
    if entry and entry["tunnel_endpoint"] and entry["tunnel_endpoint"] != own:
        where = f"ipcache {entry['prefix']} in {maps.IPCACHE}: on {entry['tunnel_endpoint']}"
        if tunnel:
            source = endpoints.get(flow["src"])
            vni = source["identity"] if source else "the source's identity"
            return steps + [f"{where}: bpf_skb_set_tunnel_key (remote {entry['tunnel_endpoint']}"
                            f", VNI {vni}), redirected into cilium_vxlan"]
        return steps + [f"{where}: bpf_fib_lookup, redirected out of eth0 (no host stack)"]
    return steps + ["not a local endpoint nor a peer's: handed to the node's stack"]
