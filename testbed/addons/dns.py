"""Cluster DNS: the kube-dns add-on, served by NSD (an authoritative DNS server) in a pod.

Records follow Kubernetes' DNS specification for `cluster.local`:
  <svc>.<ns>.svc                      A      the ClusterIP; for a headless Service the pod IPs
                                      AAAA   the same in IPv6, for a Service of that family
  _<port>._<proto>.<svc>.<ns>.svc     SRV    one per named port (per endpoint when headless,
                                             its target <a-b-c-d>.<svc>.<ns>.svc)
  <svc>.<ns>.svc                      CNAME  an ExternalName Service's externalName
  <a-b-c-d>.<ns>.pod                  A      every pod, as CoreDNS's `pods insecure` answers
                                      (AAAA for an IPv6 address: fd00-10-244--2.<ns>.pod)
  dns-version                         TXT    the specification's schema version, "1.1.0"
and in zone in-addr.arpa:
  <d>.<c>.<b>.<a>.in-addr.arpa        PTR    a ClusterIP's <svc>.<ns>.svc.cluster.local, a
                                             headless endpoint's <a-b-c-d>.<svc>.<ns>.svc...
and in zone ip6.arpa the same for IPv6 addresses (nibbles, RFC 3596), as CoreDNS answers both.
The server runs in pod kube-dns-* of kube-system behind Service kube-system/kube-dns at
10.96.0.10 (UDP and TCP 53), so queries travel through kube-proxy's rules like any Service
traffic. Names outside cluster.local are refused, and reverse names of addresses nobody in the
cluster holds are NXDOMAIN: the emulation has no upstream to forward to.

The zones are rendered from the run's state (render_zone is pure) and NSD reloads it on SIGHUP;
sync() waits until the new serial answers, so an applied manifest resolves at once.
"""
import ipaddress
import os
import shutil
import signal
from collections.abc import Callable

from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.processes import pid_is
from testbed.host.waiting import wait_until
from testbed.kubelet import dns as kubelet_dns
from testbed.kubeproxy import services
from testbed.manifests import kinds
from testbed.manifests.families import IPV4, IPV6, dns_server_ip, family_of
from testbed.model.context import PodHost
from testbed.model.records import DnsRecord, PodRecord
from testbed.model.state import RunState
from testbed.model.topology import ContainerSpec, PodSpec

DOMAIN = "cluster.local"
REVERSE = "in-addr.arpa"
REVERSE6 = "ip6.arpa"
SCHEMA_VERSION = "1.1.0"  # of kubernetes/dns docs/specification.md, which these records follow
SERVER_IP = dns_server_ip(IPV4)
NAMESPACE, SERVICE, LABELS = "kube-system", "kube-dns", {"k8s-app": "kube-dns"}
TTL_S = 5  # short, so that a pod that changes is seen again quickly (CoreDNS's default is 5 too)
RELOAD_TIMEOUT_S = 5.0


def server_ip(state: RunState) -> str:
    """kube-dns' ClusterIP, of the cluster's primary family (kubeadm's clusterDNS)."""
    return dns_server_ip(state.families[0])


def resolv_conf(namespace: str, server: str = SERVER_IP) -> str:
    """A pod's /etc/resolv.conf as the kubelet writes it for dnsPolicy ClusterFirst."""
    return kubelet_dns.pod_resolv_conf({}, namespace, server, DOMAIN, "")


NODE_RESOLV_CONF = "resolv.conf"  # in a node's directory: the kubelet's --resolv-conf


def kubelet_resolv_conf(cluster: PodHost) -> Callable[[PodRecord], str]:
    """What the kubelets write for a pod (runtime.resolv_conf): its dnsPolicy and dnsConfig
    on its node's resolv.conf, which is written to the node's directory."""
    gateways = {rack.name: str(rack.router_ip.ip) for rack in cluster.spec.racks}
    node_conf = {}
    for name, node in cluster.state.nodes.items():
        node_conf[name] = kubelet_dns.node_resolv_conf(gateways[node.rack])
        with open(os.path.join(cluster.state.subdir("nodes", name), NODE_RESOLV_CONF),
                  "w") as f:
            f.write(node_conf[name])

    server = server_ip(cluster.state)

    def resolv(record: PodRecord) -> str:
        return kubelet_dns.pod_resolv_conf(record.dns, record.namespace, server, DOMAIN,
                                           node_conf.get(record.node, ""))
    return resolv


def dashed(ip: str) -> str:
    """A pod address as a DNS label, as CoreDNS writes it: 10.244.0.2 -> 10-244-0-2,
    fd00:10:244::2 -> fd00-10-244--2."""
    return ip.replace(".", "-").replace(":", "-")


def address_type(ip: str) -> str:
    return "AAAA" if family_of(ip) == IPV6 else "A"


def _head(origin: str, serial: int) -> list[str]:
    return [f"$ORIGIN {origin}.", f"$TTL {TTL_S}",
            f"@ IN SOA ns.dns.{DOMAIN}. hostmaster.{DOMAIN}. {serial} 7200 1800 86400 {TTL_S}",
            f"@ IN NS ns.dns.{DOMAIN}."]


def endpoint_names(state: RunState, key: str) -> dict[str, str]:
    """{address: name} of a headless Service's endpoints, of each of its families: the pod's
    hostname where its subdomain is the Service's name (as the endpoints controller sets an
    endpoint's hostname), else the dashed address."""
    name = key.split("/", 1)[1]
    out = {}
    selected = [found for family in state.services[key].ip_families or [IPV4]
                for found in services.selected_pods(state, key, family)]
    for pod_key, ip in selected:
        dns = state.pods[pod_key].dns
        own = dns.get("hostname") if dns.get("subdomain") == name else ""
        out[ip] = own or dashed(ip)
    return out


def reverse_name(ip: str) -> str:
    """An address's name in in-addr.arpa or ip6.arpa, relative to that zone: 10.96.0.10 ->
    10.0.96.10, fd00:10:96::a -> a.0.0.0. ... .0.d.f (its 32 nibbles, last first)."""
    zone = REVERSE6 if family_of(ip) == IPV6 else REVERSE
    return ipaddress.ip_address(ip).reverse_pointer.removesuffix(f".{zone}")


def render_reverse_zone(state: RunState, serial: int, zone: str = REVERSE) -> str:
    """A reverse zone (in-addr.arpa, or ip6.arpa): PTR records of ClusterIPs and of headless
    Services' endpoints of its family."""
    family = IPV6 if zone == REVERSE6 else IPV4
    lines = _head(zone, serial)
    for key, record in sorted(state.services.items()):
        namespace, name = key.split("/", 1)
        owner = f"{name}.{namespace}.svc.{DOMAIN}."
        if record.type == "ExternalName":
            continue
        if record.cluster_ip == "None":
            names = endpoint_names(state, key)
            lines += [f"{reverse_name(ip)} IN PTR {names[ip]}.{owner}" for ip in sorted(names)
                      if family_of(ip) == family]
        else:
            lines += [f"{reverse_name(ip)} IN PTR {owner}" for ip in record.all_cluster_ips
                      if family_of(ip) == family]
    return "\n".join(lines) + "\n"


def render_reverse6_zone(state: RunState, serial: int) -> str:
    return render_reverse_zone(state, serial, REVERSE6)


def render_zone(state: RunState, serial: int) -> str:
    """The cluster.local zone file for a run's state."""
    server = server_ip(state)
    lines = _head(DOMAIN, serial) + [f"ns.dns IN {address_type(server)} {server}",
                                     f'dns-version IN TXT "{SCHEMA_VERSION}"']
    for key, record in sorted(state.services.items()):
        namespace, name = key.split("/", 1)
        owner = f"{name}.{namespace}.svc"
        if record.type == "ExternalName":
            lines.append(f"{owner} IN CNAME {record.external_name.rstrip('.')}.")
            continue
        headless = record.cluster_ip == "None"
        names = endpoint_names(state, key) if headless else {}
        if headless:
            ips = sorted(names)
            lines += [f"{owner} IN {address_type(ip)} {ip}" for ip in ips]
            lines += [f"{names[ip]}.{owner} IN {address_type(ip)} {ip}" for ip in ips]
        else:
            lines += [f"{owner} IN {address_type(ip)} {ip}" for ip in record.all_cluster_ips]
        found = services.endpoints(state, key)
        for port in record.ports:
            if not port.name:
                continue
            srv = f"_{port.name}._{port.protocol.lower()}.{owner}"
            if not headless:
                lines.append(f"{srv} IN SRV 0 100 {port.port} {owner}.{DOMAIN}.")
                continue
            eps = found[port.name]
            for _pod, ip, target in eps:
                lines.append(f"{srv} IN SRV 0 {100 // len(eps)} {target} "
                             f"{names[ip]}.{owner}.{DOMAIN}.")
    for _name, pod in sorted(state.pods.items()):
        lines += [f"{dashed(ip)}.{pod.namespace}.pod IN {address_type(ip)} {ip}"
                  for ip in pod.addresses]
    return "\n".join(lines) + "\n"


def render_config(directory: str, ipv6: bool = False) -> str:
    """nsd.conf: everything in the run's directory, no privilege drop, no remote control;
    listening on IPv4, or on IPv6 only in an IPv6-only cluster (whose pods have no IPv4)."""
    listen = "ip-address: ::\n  do-ip4: no\n  do-ip6: yes" if ipv6 else \
        "ip-address: 0.0.0.0\n  do-ip6: no"
    return f"""server:
  {listen}
  port: 53
  username: ""
  chroot: ""
  zonesdir: "{directory}"
  database: ""
  zonelistfile: "{directory}/zone.list"
  xfrdfile: "{directory}/xfrd.state"
  xfrdir: "{directory}"
  pidfile: "{directory}/nsd.pid"
  server-count: 1
  hide-version: yes
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: "{DOMAIN}"
  zonefile: "{DOMAIN}.zone"
zone:
  name: "{REVERSE}"
  zonefile: "{REVERSE}.zone"
zone:
  name: "{REVERSE6}"
  zonefile: "{REVERSE6}.zone"
"""


class ClusterDNS:
    """The DNS add-on of one cluster: started with the first manifest applied."""

    def __init__(self):
        self.pod = None  # "<namespace>/<name>" of the kube-dns pod once started

    def start(self, cluster: PodHost) -> None:
        """Start the server pod and its Service, and give every pod its resolv.conf."""
        if self.pod is not None:
            return
        if not shutil.which("nsd"):
            raise TestbedError("cluster DNS needs NSD (nsd), which this machine lacks: "
                               "scripts/install.sh installs it (see `testbed doctor`)")
        directory = cluster.state.subdir("dns")
        self._write_zone(cluster.state, directory)
        with open(os.path.join(directory, "nsd.conf"), "w") as f:
            f.write(render_config(directory, cluster.state.families[0] == IPV6))
        name = f"{SERVICE}-{kinds.pod_suffix(cluster.state.name)}"
        cluster.runtime.resolv_conf = kubelet_resolv_conf(cluster)  # pods from now on get one
        for record in cluster.state.pods.values():
            cluster.runtime.write_resolv_conf(record)
        pod = PodSpec(name, NAMESPACE, cluster.least_busy_node(), dict(LABELS), (ContainerSpec(
            "nsd", ("nsd", "-d", "-c", os.path.join(directory, "nsd.conf"))),))
        cluster.add_pod(pod)
        self.pod = pod.key
        services.add(cluster.state, kinds.Service(
            SERVICE, NAMESPACE, "ClusterIP", dict(LABELS),
            (kinds.ServicePort(53, 53, "dns", 0, "UDP"),
             kinds.ServicePort(53, 53, "dns-tcp", 0, "TCP")),
            server_ip(cluster.state), source="kube-dns add-on"))
        services.add_api_server(cluster.state)  # every cluster has it, to resolve
        cluster.state.dns = DnsRecord(pod.key, server_ip(cluster.state), directory)
        cluster.state.save()
        self._wait_for_serial(cluster.state, 1)

    def sync(self, cluster: PodHost) -> None:
        """Rewrite the zone from the state and have NSD load it."""
        if self.pod is None:
            return
        state = cluster.state
        facts = state.dns
        facts.serial += 1
        self._write_zone(state, facts.dir)
        state.save()
        entry = state.pods[self.pod].containers["nsd"]
        if not pid_is(entry.pid, entry.start):
            raise TestbedError(f"cluster DNS: nsd in pod {self.pod} is not running (see "
                               f"{state.dir}/pods/{self.pod}/nsd.log)")
        os.kill(entry.pid, signal.SIGHUP)
        self._wait_for_serial(state, facts.serial)

    def _write_zone(self, state, directory):
        serial = state.dns.serial if state.dns else 1
        for origin, render in ((REVERSE, render_reverse_zone), (REVERSE6, render_reverse6_zone),
                               (DOMAIN, render_zone)):
            path = os.path.join(directory, f"{origin}.zone")
            with open(path + ".new", "w") as f:
                f.write(render(state, serial))
            os.replace(path + ".new", path)

    def _wait_for_serial(self, state, serial):
        """Until the server answers with this zone serial (it loads a zone in milliseconds)."""
        sandbox = state.pods[self.pod].netns
        loopback = "::1" if state.families[0] == IPV6 else "127.0.0.1"  # where nsd listens

        def serving():
            soa = netns.run(netns.in_pod(sandbox, [
                "dig", "+short", "+time=1", "+tries=1", f"@{loopback}", "SOA", DOMAIN]),
                check=False).split()
            return len(soa) > 2 and soa[2] == str(serial)

        if not wait_until(serving, RELOAD_TIMEOUT_S):
            raise TestbedError(f"cluster DNS: nsd in pod {self.pod} did not serve zone "
                               f"serial {serial} within {RELOAD_TIMEOUT_S:.0f} s (see "
                               f"{state.dir}/pods/{self.pod}/nsd.log)")
