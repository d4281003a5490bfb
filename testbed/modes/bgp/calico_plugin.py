"""The testbed's Calico-style CNI plugin (CNI spec 1.0): ADD, DEL, CHECK, VERSION.

No reference plugin wires a pod as Calico does, so the testbed ships this one. It runs as an
executable (build/cni/testbed-calico, made by scripts/install.sh) inside the node's network
namespace, with the CNI_* environment and the network configuration on stdin:

    {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "testbed-calico", "mtu": 1500,
     "ipam": {"type": "testbed-calico-blocks", "blocks": ["10.244.0.0/26"],
              "dataDir": "/run/testbed/<cluster>/nodes/<node>/calico-ipam"}}

ADD makes a veth without a bridge: host side `cali` + 11 hex characters of a hash of the
pod's namespace and name, MAC ee:ee:ee:ee:ee:ee, proxy_arp on; pod side a /32 from the node's
blocks and a default route via 169.254.1.1 (answered by proxy ARP); on the host a /32 route to
the cali device. With an IPv6 address too (a dual-stack cluster), the pod gets it as a /128 and
an IPv6 default route via the host side's link-local address (fe80::ecee:eeff:feee:eeee, from
its MAC), as Calico routes pods in IPv6: no proxy needed, the host answers neighbour
discovery for its own address; the host gets a /128 route to the cali device. Errors are JSON
{cniVersion, code, msg, details} on stdout with exit 1.

Addresses come from the IPAM plugin the configuration names (`testbed-calico-blocks`,
ipam_plugin.py), run with the same environment and configuration, as Calico's plugin delegates
to calico-ipam.
"""
from __future__ import annotations  # unevaluated: a plugin loads no typing

import json
import os
import sys

from testbed.cni import skeleton, spawn

try:  # CPython's own SHA-1, built in: hashlib would load OpenSSL (4 ms) for one hash per pod
    from _sha1 import sha1
except ImportError:
    from hashlib import sha1
from testbed.cni.skeleton import (
    IO_FAILURE,
    PluginError,
    delegate_ipam,
    ip_batch,
    link_json,
    sh,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

HOST_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY = "169.254.1.1"
GATEWAY_V6 = "fe80::ecee:eeff:feee:eeee"  # the host side's EUI-64 link-local address


def host_veth_name(namespace: str, pod: str) -> str:
    """Calico's rule: "cali" + the first 11 hex digits of sha1("<namespace>.<pod>")."""
    return "cali" + sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def load_config(text: str) -> dict:
    conf = skeleton.load_json_config(text)
    skeleton.require_ipam_type(conf)
    return conf


def environment(env: Mapping[str, str], command: str) -> dict:
    ctx = skeleton.pod_environment(env, command)
    # the environment as given, for the IPAM plugin (delegated to with the same one)
    return {**ctx, "host_veth": host_veth_name(ctx["namespace"], ctx["pod"]), "env": dict(env)}


# --- the datapath -----------------------------------------------------------------------
def add(conf: dict, env: dict) -> dict:
    allocated = delegate_ipam(conf, "ADD", env["env"])
    addresses = [entry["address"].split("/")[0] for entry in allocated["ips"]]
    # an address of each family the pool has: IPv4, IPv6 or both (an IPv6-only cluster's
    # pods have no IPv4 address, and no 169.254.1.1 gateway)
    ip = next((a for a in addresses if ":" not in a), None)
    ip6 = next((a for a in addresses if ":" in a), None)
    host, ifname, ns = env["host_veth"], env["ifname"], env["netns"]
    mtu = conf.get("mtu", 1500)
    try:
        skeleton.make_veth(ifname, host, mtu, ns)
        sysctls = []
        if ip:
            sysctls += [("ipv4", "conf/{}/proxy_arp", "1"), ("ipv4", "neigh/{}/proxy_delay", "0"),
                        ("ipv4", "conf/{}/forwarding", "1")]
        if ip6:  # the link-local gateway usable at once: no duplicate check on a veth end
            sysctls += [("ipv6", "conf/{}/accept_dad", "0"), ("ipv6", "conf/{}/accept_ra", "0")]
        for family, key, value in sysctls:
            with open(f"/proc/sys/net/{family}/{key.format(host)}", "w") as f:
                f.write(value)
        pod = [f"link set {ifname} up"]
        node = [f"link set {host} address {HOST_MAC} up"]
        if ip:
            pod += [f"addr add {ip}/32 dev {ifname}",
                    f"route add {GATEWAY} dev {ifname} scope link",
                    f"route add default via {GATEWAY} dev {ifname}"]
            node.append(f"route replace {ip}/32 dev {host} scope link")
        if ip6:
            pod.insert(0, f"addr add {ip6}/128 dev {ifname} nodad")
            pod.append(f"route add ::/0 via {GATEWAY_V6} dev {ifname}")
            node.append(f"route replace {ip6}/128 dev {host}")
        ip_batch(pod, netns=ns)
        ip_batch(node)
    except PluginError:
        delegate_ipam(conf, "DEL", env["env"])
        spawn.run(["ip", "link", "del", host])
        raise
    pod_mac = link_json(ifname, ns)["address"]
    ips, routes = [], []
    if ip:
        ips.append({"address": f"{ip}/32", "interface": 1})
        routes.append({"dst": "0.0.0.0/0", "gw": GATEWAY})
    if ip6:
        ips.append({"address": f"{ip6}/128", "interface": 1})
        routes.append({"dst": "::/0", "gw": GATEWAY_V6})
    return {"cniVersion": conf["cniVersion"],
            "interfaces": [{"name": host, "mac": HOST_MAC},
                           {"name": ifname, "mac": pod_mac, "sandbox": ns}],
            "ips": ips, "routes": routes}


def delete(conf: dict, env: dict) -> None:
    """Idempotent, as the spec asks: whatever is already gone is not an error. The /32 route
    goes with the cali device it points at."""
    spawn.run(["ip", "link", "del", env["host_veth"]])
    delegate_ipam(conf, "DEL", env["env"])


def check(conf: dict, env: dict) -> None:
    delegate_ipam(conf, "CHECK", env["env"])  # the address is still this container's
    found = sh("ip", "-j", "addr", "show", "dev", env["ifname"], netns=env["netns"])
    ip = next((a["local"] for link in json.loads(found or "[]")
               for a in link.get("addr_info", []) if a.get("scope") == "global"), None)
    if ip is None:
        raise PluginError(IO_FAILURE, f"{env['ifname']} in the pod has no address")
    host = link_json(env["host_veth"])
    if host is None or host["address"] != HOST_MAC:
        raise PluginError(IO_FAILURE, f"host interface {env['host_veth']} is missing or has "
                          f"another MAC than {HOST_MAC}")
    host_route = f"{ip}/128" if ":" in ip else f"{ip}/32"
    routes = sh("ip", "route", "show", host_route)
    if f"dev {env['host_veth']}" not in routes:
        raise PluginError(IO_FAILURE, f"the node has no route to {host_route} via "
                          f"{env['host_veth']}")


def main(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
         env: Mapping[str, str] = os.environ) -> int:
    return skeleton.main(load_config, environment, add, delete, check, stdin, stdout, env)


if __name__ == "__main__":
    sys.exit(main())
