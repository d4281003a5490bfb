"""The ebpf mode's CNI plugin (CNI spec 1.0): a pod's veth as Cilium's plugin makes it.

    {"cniVersion": "1.0.0", "name": "cilium", "type": "testbed-cilium", "mtu": 1500,
     "router": "10.244.0.1",
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24",
              "rangeStart": "10.244.0.2"}]], "dataDir": ...}}

ADD makes a veth without a bridge: host side `lxc` + the first 12 hex digits of
sha256(<container ID>) (Cilium's Endpoint2IfName), pod side eth0 with a /32 from the node's
pod CIDR and a default route via the node's router address (held by cilium_host), through a
link route to it. Nothing answers ARP on the host side but the datapath's program, which the
mode attaches once the pod exists (as Cilium's agent does once the plugin has told it of the
endpoint). Reverse-path filtering is off on the host side: replies of a pod come back by
whatever path the programs chose. In a dual-stack cluster ("router6": cilium_host's IPv6
address, a second IPAM range) the pod also gets a /128 (without duplicate address detection:
the address is the IPAM's alone) and an IPv6 default route via router6, whose neighbour
solicitations the datapath's program answers.
"""
from __future__ import annotations  # unevaluated: a plugin loads no typing

import json
import os
import sys

from testbed.cni import skeleton, spawn

try:  # CPython's own SHA-256, built in: hashlib would load OpenSSL for one hash per pod
    from _sha2 import sha256
except ImportError:
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256
from testbed.cni.skeleton import (
    INVALID_CONFIG,
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


def host_veth_name(container_id: str) -> str:
    """Cilium's rule: "lxc" + the first 12 hex digits of sha256(<container ID>)."""
    return "lxc" + sha256(container_id.encode()).hexdigest()[:12]


def load_config(text: str) -> dict:
    conf = skeleton.load_json_config(text)
    if not isinstance(conf.get("router"), str) or not conf["router"]:
        raise PluginError(INVALID_CONFIG, "router is missing: the node's router address "
                          "(cilium_host) pods route through")
    skeleton.require_ipam_type(conf)
    return conf


def environment(env: Mapping[str, str], command: str) -> dict:
    ctx = skeleton.pod_environment(env, command)
    return {**ctx, "host_veth": host_veth_name(ctx["id"]), "env": dict(env)}


def add(conf: dict, ctx: dict) -> dict:
    allocated = delegate_ipam(conf, "ADD", ctx["env"])
    if not allocated.get("ips"):
        raise PluginError(IO_FAILURE, "IPAM returned no address")
    addresses = [entry["address"].split("/")[0] for entry in allocated["ips"]]
    ip = next(a for a in addresses if ":" not in a)
    ip6 = next((a for a in addresses if ":" in a), None) if conf.get("router6") else None
    host, ifname, ns, router = ctx["host_veth"], ctx["ifname"], ctx["netns"], conf["router"]
    try:
        skeleton.make_veth(ifname, host, conf.get("mtu", 1500), ns)
        for key in ("rp_filter", "forwarding"):
            with open(f"/proc/sys/net/ipv4/conf/{host}/{key}", "w") as f:
                f.write("0" if key == "rp_filter" else "1")
        pod = [f"addr add {ip}/32 dev {ifname}", f"link set {ifname} up",
               f"route add {router} dev {ifname} scope link",
               f"route add default via {router} dev {ifname}"]
        if ip6:
            router6 = conf["router6"]
            pod[1:1] = [f"addr add {ip6}/128 dev {ifname} nodad"]
            pod += [f"route add {router6} dev {ifname}",
                    f"route add default via {router6} dev {ifname}"]
        ip_batch(pod, netns=ns)
        ip_batch([f"link set {host} up"])
    except PluginError:
        delegate_ipam(conf, "DEL", ctx["env"])
        spawn.run(["ip", "link", "del", host])
        raise
    return {"cniVersion": conf["cniVersion"],
            "interfaces": [{"name": host, "mac": link_json(host)["address"]},
                           {"name": ifname, "mac": link_json(ifname, ns)["address"],
                            "sandbox": ns}],
            "ips": [{"address": f"{ip}/32", "gateway": router, "interface": 1}] +
                   ([{"address": f"{ip6}/128", "gateway": conf["router6"], "interface": 1}]
                    if ip6 else []),
            "routes": [{"dst": "0.0.0.0/0", "gw": router}] +
                      ([{"dst": "::/0", "gw": conf["router6"]}] if ip6 else [])}


def delete(conf: dict, ctx: dict) -> None:
    """Idempotent, as the spec asks: whatever is already gone is not an error."""
    spawn.run(["ip", "link", "del", ctx["host_veth"]])
    delegate_ipam(conf, "DEL", ctx["env"])


def check(conf: dict, ctx: dict) -> None:
    delegate_ipam(conf, "CHECK", ctx["env"])
    found = sh("ip", "-4", "-j", "addr", "show", "dev", ctx["ifname"], netns=ctx["netns"])
    if not any(a.get("prefixlen") == 32 for link in json.loads(found or "[]")
               for a in link.get("addr_info", [])):
        raise PluginError(IO_FAILURE, f"{ctx['ifname']} in the pod has no /32 address")
    if link_json(ctx["host_veth"]) is None:
        raise PluginError(IO_FAILURE, f"host interface {ctx['host_veth']} is missing")


def main(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
         env: Mapping[str, str] = os.environ) -> int:
    return skeleton.main(load_config, environment, add, delete, check, stdin, stdout, env)


if __name__ == "__main__":
    sys.exit(main())
