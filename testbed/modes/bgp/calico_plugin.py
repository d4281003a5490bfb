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
the cali device. Errors are JSON {cniVersion, code, msg, details} on stdout with exit 1.
"""
import fcntl
import hashlib
import ipaddress
import os
import subprocess
import sys

from testbed.cni import skeleton as cniplugin
from testbed.cni.skeleton import (
    INVALID_CONFIG,
    IO_FAILURE,
    TRY_AGAIN,
    UNKNOWN_CONTAINER,
    PluginError,
    link_json,
    sh,
)

HOST_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY = "169.254.1.1"


def host_veth_name(namespace, pod):
    """Calico's rule: "cali" + the first 11 hex digits of sha1("<namespace>.<pod>")."""
    return "cali" + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def load_config(text):
    conf = cniplugin.load_json_config(text)
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or not ipam.get("dataDir"):
        raise PluginError(INVALID_CONFIG, "ipam.dataDir is missing")
    blocks = ipam.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise PluginError(INVALID_CONFIG, "ipam.blocks must be a non-empty list of CIDRs")
    try:
        conf["_blocks"] = [ipaddress.IPv4Network(b) for b in blocks]
    except ValueError as e:
        raise PluginError(INVALID_CONFIG, f"ipam.blocks: {e}")
    return conf


def environment(env, command):
    ctx = cniplugin.pod_environment(env, command)
    return {**ctx, "host_veth": host_veth_name(ctx["namespace"], ctx["pod"])}


# --- IPAM: one file per address in the node's data directory, as host-local keeps them ------
class BlockAllocator:
    def __init__(self, data_dir, blocks):
        self.dir = data_dir
        self.blocks = blocks

    def _locked(self):
        os.makedirs(self.dir, exist_ok=True)
        lock = open(os.path.join(self.dir, "lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def owner(self, ip):
        try:
            with open(os.path.join(self.dir, str(ip))) as f:
                return f.read().strip()
        except OSError:
            return None

    def allocate(self, container_id):
        with self._locked():
            for block in self.blocks:
                for ip in block:  # every address of a block: pods get /32s
                    if self.owner(ip) in (None, container_id):
                        with open(os.path.join(self.dir, str(ip)), "w") as f:
                            f.write(container_id)
                        return ip
        raise PluginError(TRY_AGAIN, "no free address in this node's blocks",
                          ", ".join(map(str, self.blocks)))

    def find(self, container_id):
        for name in os.listdir(self.dir) if os.path.isdir(self.dir) else []:
            if name != "lock" and self.owner(name) == container_id:
                return ipaddress.IPv4Address(name)
        return None

    def release(self, container_id):
        with self._locked():
            ip = self.find(container_id)
            if ip is not None:
                os.unlink(os.path.join(self.dir, str(ip)))
            return ip


# --- the datapath -----------------------------------------------------------------------
def add(conf, env):
    alloc = BlockAllocator(conf["ipam"]["dataDir"], conf["_blocks"])
    ip = alloc.allocate(env["id"])
    host, ifname, ns = env["host_veth"], env["ifname"], env["netns"]
    mtu = conf.get("mtu", 1500)
    try:
        cniplugin.make_veth(ifname, host, mtu, ns)
        sh("ip", "link", "set", host, "address", HOST_MAC)
        for key, value in (("conf/{}/proxy_arp", "1"), ("neigh/{}/proxy_delay", "0"),
                           ("conf/{}/forwarding", "1")):
            with open(f"/proc/sys/net/ipv4/{key.format(host)}", "w") as f:
                f.write(value)
        sh("ip", "link", "set", host, "up")
        sh("ip", "addr", "add", f"{ip}/32", "dev", ifname, netns=ns)
        sh("ip", "link", "set", ifname, "up", netns=ns)
        sh("ip", "route", "add", GATEWAY, "dev", ifname, "scope", "link", netns=ns)
        sh("ip", "route", "add", "default", "via", GATEWAY, "dev", ifname, netns=ns)
        sh("ip", "route", "replace", f"{ip}/32", "dev", host, "scope", "link")
    except PluginError:
        alloc.release(env["id"])
        subprocess.run(["ip", "link", "del", host], capture_output=True)
        raise
    pod_mac = link_json(ifname, ns)["address"]
    return {"cniVersion": conf["cniVersion"],
            "interfaces": [{"name": host, "mac": HOST_MAC},
                           {"name": ifname, "mac": pod_mac, "sandbox": ns}],
            "ips": [{"address": f"{ip}/32", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}]}


def delete(conf, env):
    """Idempotent, as the spec asks: whatever is already gone is not an error."""
    subprocess.run(["ip", "link", "del", env["host_veth"]], capture_output=True)
    ip = BlockAllocator(conf["ipam"]["dataDir"], conf["_blocks"]).release(env["id"])
    if ip is not None:
        subprocess.run(["ip", "route", "del", f"{ip}/32"], capture_output=True)


def check(conf, env):
    ip = BlockAllocator(conf["ipam"]["dataDir"], conf["_blocks"]).find(env["id"])
    if ip is None:
        raise PluginError(UNKNOWN_CONTAINER, f"no address is allocated to {env['id']}")
    host = link_json(env["host_veth"])
    if host is None or host["address"] != HOST_MAC:
        raise PluginError(IO_FAILURE, f"host interface {env['host_veth']} is missing or has "
                          f"another MAC than {HOST_MAC}")
    addrs = sh("ip", "-4", "-o", "addr", "show", "dev", env["ifname"], netns=env["netns"])
    if f"{ip}/32" not in addrs:
        raise PluginError(IO_FAILURE, f"{env['ifname']} in the pod lacks {ip}/32")


def main(stdin=sys.stdin, stdout=sys.stdout, env=os.environ):
    return cniplugin.main(load_config, environment, add, delete, check, stdin, stdout, env)


if __name__ == "__main__":
    sys.exit(main())
