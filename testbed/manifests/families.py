"""A Service's IP families, settled as kube-apiserver settles them when a Service is created
(its storage's initIPFamilyFields and the validation around it): ipFamilies and ipFamilyPolicy
defaulted from what the Service asks, its clusterIPs and the cluster's service ranges, or
refused with the API server's words.

- ipFamilies follow the clusterIPs asked for; two families and no policy mean RequireDualStack;
  no policy at all means SingleStack; no families mean the cluster's primary one;
  PreferDualStack or RequireDualStack on a dual-stack cluster add the other family.
- RequireDualStack on a single-stack cluster, or a family the cluster has no range for, is
  refused; so is SingleStack with two families, and a family given twice.
- A headless Service without a selector may have the families the cluster lacks, as the API
  server allows it.

Shared by the API server (which allocates from the result) and `testbed apply` (which
records Services without one); pure, so the unit tests hold it to the rules above.
"""
import ipaddress
from dataclasses import dataclass

IPV4, IPV6 = "IPv4", "IPv6"
FAMILIES = (IPV4, IPV6)
SINGLE, PREFER, REQUIRE = "SingleStack", "PreferDualStack", "RequireDualStack"
POLICIES = (SINGLE, PREFER, REQUIRE)
HEADLESS = "None"
# the service ranges of each family: kubeadm's IPv4 range, kind's IPv6 one
SERVICE_CIDRS: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {
    IPV4: ipaddress.IPv4Network("10.96.0.0/12"), IPV6: ipaddress.IPv6Network("fd00:10:96::/112")}


def join_host_port(host: str, port: object) -> str:
    """host:port as Go's net.JoinHostPort writes it (and kube-proxy's rules, and URLs): an
    IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def api_server_ip(family: str = IPV4) -> str:
    """default/kubernetes' ClusterIP: the first address of the primary family's range, as
    kube-apiserver takes it (10.96.0.1; fd00:10:96::1 in an IPv6-only cluster)."""
    return str(SERVICE_CIDRS[family][1])


def dns_server_ip(family: str = IPV4) -> str:
    """kube-dns' ClusterIP: the tenth address of the range, as kubeadm's clusterDNS and
    kind's (10.96.0.10; fd00:10:96::a)."""
    return str(SERVICE_CIDRS[family][10])


class FamilyError(ValueError):
    """A refusal of one field, worded as kube-apiserver's field error."""

    def __init__(self, field: str, value: object, message: str, kind: str = "Invalid value"):
        shown = f'"{value}"' if isinstance(value, str) else str(value)
        super().__init__(f"{field}: {kind}: {shown}: {message}")
        self.field, self.value, self.message, self.kind = field, value, message, kind


def family_of(address: str) -> str:
    """"IPv4" or "IPv6" of an address."""
    return IPV6 if ipaddress.ip_address(address).version == 6 else IPV4


@dataclass(frozen=True)
class Settled:
    families: tuple[str, ...]
    policy: str


def settle(families: list[str], policy: str, cluster_ips: list[str], selector: bool,
           cluster: tuple[str, ...]) -> Settled:
    """ipFamilies and ipFamilyPolicy of a new Service: `families` and `policy` as asked ("":
    not set), `cluster_ips` asked for (clusterIPs, or clusterIP alone; "None": headless),
    `selector` whether it has one, `cluster` the cluster's families, primary first."""
    if policy and policy not in POLICIES:
        raise FamilyError("spec.ipFamilyPolicy", policy, "supported values: "
                          + ", ".join(f'"{p}"' for p in sorted(POLICIES)), "Unsupported value")
    families = list(families)
    for i, family in enumerate(families):
        if family not in FAMILIES:
            raise FamilyError(f"spec.ipFamilies[{i}]", family, 'supported values: "IPv4", '
                              '"IPv6"', "Unsupported value")
        if family in families[:i]:
            raise FamilyError(f"spec.ipFamilies[{i}]", family, "", "Duplicate value")
    if len(families) > 2:
        raise FamilyError("spec.ipFamilies", families, "may specify no more than one IP for "
                          "each IP family")
    headless = bool(cluster_ips) and cluster_ips[0] == HEADLESS
    for i, address in enumerate([] if headless else cluster_ips):
        family = family_of(address)
        if i >= len(families):
            families.append(family)
        elif families[i] != family:
            raise FamilyError(f"spec.ipFamilies[{i}]", families[i],
                              "must match IP family of clusterIP")
    if not policy and len(families) == 2:
        policy = REQUIRE
    if headless and not selector:  # the API server's special case: any families
        families = families or [cluster[0]]
        if len(families) < 2 and policy not in ("", SINGLE):
            families.append(IPV6 if families[0] == IPV4 else IPV4)
        return Settled(tuple(families), policy or SINGLE)
    if policy == REQUIRE and len(cluster) < 2:
        raise FamilyError("spec.ipFamilyPolicy", policy,
                          "this cluster is not configured for dual-stack services")
    for i, family in enumerate(families):
        if family not in cluster:
            raise FamilyError(f"spec.ipFamilies[{i}]", family, "not configured on this cluster")
    policy = policy or SINGLE
    if policy == SINGLE and len(families) > 1:
        raise FamilyError("spec.ipFamilyPolicy", policy, "must be RequireDualStack or "
                          "PreferDualStack when multiple IP families are specified")
    families = families or [cluster[0]]
    if policy != SINGLE and len(families) == 1 and len(cluster) == 2:
        families.append(IPV6 if families[0] == IPV4 else IPV4)
    return Settled(tuple(families), policy)
