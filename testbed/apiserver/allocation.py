"""ClusterIPs and NodePorts as kube-apiserver allocates them when a Service is created.

Both ranges are split in two bands (KEP-3070 for ClusterIPs, KEP-3668 for NodePorts): a lower
static band kept for Services that ask for a given address or port, and the upper band from
which a Service that asks for none gets a random free one; only when the upper band is full
does the allocator take from the lower. So a manifest written for a real cluster, whose
Services ask for `nodePort: 30002` after others that asked for none, applies unchanged.
The static band: ClusterIPs min(max(16, size/16), 256) addresses, NodePorts
min(max(16, size/32), 128) ports.

A Service's IP families are settled first (manifests/families.py, the API server's rules),
then it gets a ClusterIP of each from that family's range: the API server's
--service-cluster-ip-range, "10.96.0.0/12" or, in a dual-stack cluster,
"10.96.0.0/12,fd00:10:96::/112".
"""
import ipaddress
import random
from typing import Any

from testbed.manifests.families import IPV4, SERVICE_CIDRS, FamilyError, family_of, settle

from .status import ApiError

SERVICE_CIDR = SERVICE_CIDRS[IPV4]  # kubeadm's and the kube-proxy's
NODE_PORT_RANGE = range(30000, 32768)
HEADLESS = "None"


def static_band(size: int, divisor: int, most: int) -> int:
    return min(max(16, size // divisor), most)


def _invalid(name: str, field: str, value, message: str, kind: str = "Invalid value"
             ) -> ApiError:
    """422 Invalid, worded as kube-apiserver words a Service it cannot allocate for."""
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    said = f"{kind}: {shown}" + (f": {message}" if message else "")
    reason = "FieldValue" + kind.split()[0] if kind != "Invalid value" else "FieldValueInvalid"
    return ApiError(422, f'Service "{name}" is invalid: {field}: {said}', details={
        "name": name, "kind": "Service", "causes": [
            {"reason": reason, "field": field, "message": said}]})


def service_ranges(text: str) -> dict:
    """--service-cluster-ip-range ("10.96.0.0/12,fd00:10:96::/112") -> {family: range},
    the primary first."""
    ranges = [ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip()]
    return {family_of(str(r.network_address)): r for r in ranges}


def pick(candidates_upper: list, candidates_lower: list, rng: random.Random) -> Any:
    """A random free value of the upper band, else of the lower; None when both are full."""
    for band in (candidates_upper, candidates_lower):
        if band:
            return rng.choice(band)
    return None


def allocate_cluster_ip(name: str, spec: dict, used: set[str], rng: random.Random,
                        ranges: dict | None = None) -> None:
    """Set spec.clusterIP(s), ipFamilies and ipFamilyPolicy: the families settled as the
    API server settles them, and per family the address asked for, checked, or a free one of
    the upper band. `ranges`: {family: service range}, the primary first (default: IPv4's)."""
    ranges = ranges or {IPV4: SERVICE_CIDR}
    if spec.get("type") == "ExternalName":
        return
    asked = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP") or ""]) if ip]
    try:
        settled = settle(list(spec.get("ipFamilies") or []), spec.get("ipFamilyPolicy") or "",
                         asked, bool(spec.get("selector")), tuple(ranges))
    except FamilyError as e:
        raise _invalid(name, e.field, e.value, e.message, e.kind)
    except ValueError:  # an address that is none: the field it came from says so
        raise _invalid(name, "spec.clusterIPs" if spec.get("clusterIPs") else
                       "spec.clusterIP", asked[0], "must be a valid IP address, (e.g. 10.9.8.7 "
                       "or 2001:db8::ffff)")
    spec["ipFamilies"], spec["ipFamilyPolicy"] = list(settled.families), settled.policy
    if asked[:1] == [HEADLESS]:
        spec["clusterIP"], spec["clusterIPs"] = HEADLESS, [HEADLESS]
        return
    ips = [_one_ip(name, asked[i] if i < len(asked) else "", used, rng, ranges[family])
           for i, family in enumerate(settled.families)]
    spec["clusterIP"], spec["clusterIPs"] = ips[0], ips


def _one_ip(name: str, asked: str, used: set[str], rng: random.Random,
            cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The ClusterIP of one family: `asked`, checked, or a free one of the upper band."""
    if asked:
        try:
            ip = ipaddress.ip_address(asked)
        except ValueError:
            raise _invalid(name, "spec.clusterIP", asked,
                           "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address):
            raise _invalid(name, "spec.clusterIPs", asked,
                           f"failed to allocate IP {asked}: the provided IP ({asked}) is not "
                           f"in the valid range. The range of valid IPs is {cidr}")
        if asked in used:
            raise _invalid(name, "spec.clusterIPs", asked,
                           f"failed to allocate IP {asked}: provided IP is already allocated")
    else:
        band = static_band(cidr.num_addresses, 16, 256)
        first, last = int(cidr.network_address) + 1, int(cidr.broadcast_address) - 1
        boundary = int(cidr.network_address) + band
        found = None
        for _ in range(64):  # random probes of the upper band, as the bitmap allocator
            candidate = str(ipaddress.ip_address(rng.randint(boundary, last)))
            if candidate not in used:
                found = candidate
                break
        if found is None:
            found = pick([], [str(ipaddress.ip_address(i)) for i in range(first, boundary)
                              if str(ipaddress.ip_address(i)) not in used], rng)
        if found is None:
            raise ApiError(500, f"failed to allocate a serviceIP: range is full ({cidr})",
                           "InternalError")
        asked = found
    return asked


def allocate_node_ports(name: str, spec: dict, used: set[int], rng: random.Random,
                        ports: range = NODE_PORT_RANGE) -> None:
    """Each port of a NodePort or LoadBalancer Service gets its nodePort: the one asked for,
    checked, or a free one of the upper band; healthCheckNodePort likewise for a
    LoadBalancer with externalTrafficPolicy Local."""
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return
    taken = set(used)
    band = static_band(len(ports), 32, 128)

    def take(asked, field):
        if asked:
            if asked not in ports:
                raise _invalid(name, field, asked,
                               f"provided port is not in the valid range. The range of valid "
                               f"ports is {ports.start}-{ports.stop - 1}")
            if asked in taken:
                raise _invalid(name, field, asked,
                               "provided port is already allocated")
            taken.add(asked)
            return asked
        upper = [p for p in ports[band:] if p not in taken]
        found = pick(upper, [p for p in ports[:band] if p not in taken], rng)
        if found is None:
            raise ApiError(500, "failed to allocate a nodePort: range is full",
                           "InternalError")
        taken.add(found)
        return found

    for i, port in enumerate(spec.get("ports") or []):
        if isinstance(port, dict):
            port["nodePort"] = take(port.get("nodePort") or 0, f"spec.ports[{i}].nodePort")
    if spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
        spec["healthCheckNodePort"] = take(spec.get("healthCheckNodePort") or 0,
                                           "spec.healthCheckNodePort")


def in_use(services: list[dict]) -> tuple[set[str], set[int]]:
    """The ClusterIPs and node ports the stored Services hold."""
    ips, node_ports = set(), set()
    for svc in services:
        spec = svc.get("spec") or {}
        ips |= {ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
                if ip and ip != HEADLESS}
        node_ports |= {p.get("nodePort") for p in spec.get("ports") or []
                       if isinstance(p, dict) and p.get("nodePort")}
        if spec.get("healthCheckNodePort"):
            node_ports.add(spec["healthCheckNodePort"])
    return ips, node_ports
