"""The openflow mode's CNI plugin (CNI spec 1.0): a pod's veth as a port of the node's br-int.

In the style of Antrea's CNI server: the pod side is eth0 with an address from the node's
subnet (IPAM delegated, here to host-local) and a default route via the node's gateway (gw0 on
br-int); the host side becomes an OVS port carrying the pod's identity in external_ids. The
flows that make the port useful come from the controller, which the testbed tells of the pod.

    {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "testbed-ovs", "mtu": 1450,
     "bridge": "br-int", "ovsdb": "unix:/run/testbed/<cluster>/openflow/<node>.db.sock",
     "gateway": "10.244.0.1", "userspaceDatapath": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "dataDir": ...}}

With userspaceDatapath the host side is made that datapath's alone and both ends compute
their own checksums (see testbed/ovs.py). With a range per family (a dual-stack cluster) the pod
gets an address of each, IPv6 without duplicate address detection (the IPAM's alone, usable at
once), and a default route of each family via that range's gateway (gw0's address).
"""
from __future__ import annotations  # unevaluated: a plugin loads no typing

import hashlib
import os
import sys

from testbed.cni import skeleton, spawn
from testbed.cni.skeleton import (
    INVALID_CONFIG,
    IO_FAILURE,
    UNKNOWN_CONTAINER,
    PluginError,
    link_json,
    sh,
)
from testbed.underlay import ovs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO


def host_port_name(namespace: str, pod: str) -> str:
    """"of" + the first 11 hex digits of sha1("<namespace>.<pod>"): 13 characters."""
    return "of" + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def load_config(text: str) -> dict:
    conf = skeleton.load_json_config(text)
    for key in ("bridge", "ovsdb", "gateway"):
        if not isinstance(conf.get(key), str) or not conf[key]:
            raise PluginError(INVALID_CONFIG, f"{key} is missing")
    if not isinstance(conf.get("ipam"), dict):
        raise PluginError(INVALID_CONFIG, "ipam is missing")
    return conf


def environment(env: Mapping[str, str], command: str) -> dict:
    ctx = skeleton.pod_environment(env, command)
    return {**ctx, "host": host_port_name(ctx["namespace"], ctx["pod"]), "env": dict(env)}


def vsctl(conf: dict, *args: str) -> str:
    return sh("ovs-vsctl", f"--db={conf['ovsdb']}", "--timeout=10", *args)


def add(conf: dict, ctx: dict) -> dict:
    ipam = skeleton.delegate_ipam(conf, "ADD", ctx["env"])
    if not ipam.get("ips"):
        raise PluginError(IO_FAILURE, "IPAM returned no address")
    # an address per range (IPv4, then IPv6 in a dual-stack cluster), each with its range's
    # gateway: gw0's address of that family
    ips = [{"address": entry["address"], "gateway": entry.get("gateway") or conf["gateway"],
            "interface": 1} for entry in ipam["ips"]]
    address = ips[0]["address"]
    host, ifname, ns = ctx["host"], ctx["ifname"], ctx["netns"]
    try:
        skeleton.make_veth(ifname, host, conf.get("mtu", 1500), ns)
        if conf.get("userspaceDatapath"):
            for argv in ovs.userspace_port_argvs(host):
                sh(*argv)
            sh("ethtool", "-K", ifname, "tx", "off", netns=ns)
        for entry in ips:  # IPv6 without duplicate detection: the address is the IPAM's alone
            extra = ["nodad"] if ":" in entry["address"] else []
            sh("ip", "addr", "add", entry["address"], "dev", ifname, *extra, netns=ns)
        sh("ip", "link", "set", ifname, "up", netns=ns)
        for entry in ips:
            family = "-6" if ":" in entry["address"] else "-4"
            sh("ip", family, "route", "add", "default", "via", entry["gateway"], "dev", ifname,
               netns=ns)
        sh("ip", "link", "set", host, "up")
        pod_mac = link_json(ifname, ns)["address"]
        vsctl(conf, "--may-exist", "add-port", conf["bridge"], host, "--", "set", "interface",
              host, f'external_ids:k8s-pod="{ctx["namespace"]}/{ctx["pod"]}"',
              f"external_ids:ip={address.split('/')[0]}", f'external_ids:mac="{pod_mac}"')
    except PluginError:
        spawn.run(["ovs-vsctl", f"--db={conf['ovsdb']}", "--if-exists", "del-port",
                   conf["bridge"], host])
        spawn.run(["nft", "delete", "chain", "netdev", ovs.NFT_TABLE, f"in-{host}"])
        spawn.run(["ip", "link", "del", host])
        skeleton.delegate_ipam(conf, "DEL", ctx["env"])
        raise
    return {"cniVersion": conf["cniVersion"],
            "interfaces": [{"name": host, "mac": link_json(host)["address"]},
                           {"name": ifname, "mac": pod_mac, "sandbox": ns}],
            "ips": ips,
            "routes": [{"dst": "::/0" if ":" in entry["address"] else "0.0.0.0/0",
                        "gw": entry["gateway"]} for entry in ips]}


def delete(conf: dict, ctx: dict) -> None:
    """Idempotent, as the spec asks: whatever is already gone is not an error."""
    spawn.run(["nft", "delete", "chain", "netdev", ovs.NFT_TABLE, f"in-{ctx['host']}"])
    spawn.run(["ovs-vsctl", f"--db={conf['ovsdb']}", "--timeout=10", "--if-exists",
               "del-port", conf["bridge"], ctx["host"]])
    spawn.run(["ip", "link", "del", ctx["host"]])
    skeleton.delegate_ipam(conf, "DEL", ctx["env"])


def check(conf: dict, ctx: dict) -> None:
    ports = vsctl(conf, "list-ports", conf["bridge"]).split()
    if ctx["host"] not in ports:
        raise PluginError(UNKNOWN_CONTAINER, f"{ctx['host']} is not a port of {conf['bridge']}")


def main(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
         env: Mapping[str, str] = os.environ) -> int:
    return skeleton.main(load_config, environment, add, delete, check, stdin, stdout, env)


if __name__ == "__main__":
    sys.exit(main())
