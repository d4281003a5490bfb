"""The bgp mode's IPAM plugin, `testbed-calico-blocks` (CNI spec 1.0): ADD, DEL, CHECK, VERSION.

As calico-ipam does for Calico's plugin, it hands out /32s from the address blocks the node
holds (the mode gives each node its blocks, which BIRD announces); the CNI plugin delegates to
it with its own environment and configuration:

    "ipam": {"type": "testbed-calico-blocks", "blocks": ["10.244.0.0/26"],
             "dataDir": "/run/testbed/<cluster>/nodes/<node>/calico-ipam"}

Each address taken is a file in dataDir named after it and holding the container ID, as
host-local keeps them; a lock file serialises concurrent ADDs on one node. ADD for a container
that has an address returns that address again. With blocks of both families (a dual-stack
cluster: /26s and /122s) a pod gets one address of each, IPv4 first, as calico-ipam assigns
with assign_ipv4 and assign_ipv6. It runs as an executable
(build/cni/testbed-calico-blocks, made by scripts/install.sh).
"""
from __future__ import annotations  # unevaluated: a plugin loads no typing

import fcntl
import ipaddress
import os
import sys

from testbed.cni import skeleton
from testbed.cni.skeleton import INVALID_CONFIG, TRY_AGAIN, UNKNOWN_CONTAINER, PluginError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO


def load_config(text: str) -> dict:
    conf = skeleton.load_json_config(text)
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or not ipam.get("dataDir"):
        raise PluginError(INVALID_CONFIG, "ipam.dataDir is missing")
    blocks = ipam.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise PluginError(INVALID_CONFIG, "ipam.blocks must be a non-empty list of CIDRs")
    try:
        conf["_blocks"] = [ipaddress.ip_network(b) for b in blocks]
    except ValueError as e:
        raise PluginError(INVALID_CONFIG, f"ipam.blocks: {e}")
    return conf


class BlockAllocator:
    def __init__(self, data_dir: str, blocks: list[str]):
        self.dir = data_dir
        self.blocks = blocks

    def _locked(self):
        os.makedirs(self.dir, exist_ok=True)
        lock = open(os.path.join(self.dir, "lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def owner(self, ip: str) -> str | None:
        try:
            with open(os.path.join(self.dir, str(ip))) as f:
                return f.read().strip()
        except OSError:
            return None

    def allocate(self, container_id: str) -> list:
        """An address of each family the blocks have, IPv4 first."""
        taken = []
        with self._locked():
            for version in sorted({block.version for block in self.blocks}):
                taken.append(self._take(container_id, [b for b in self.blocks
                                                       if b.version == version]))
        return taken

    def _take(self, container_id, blocks):
        for block in blocks:
            for ip in block:  # every address of a block: pods get /32s (/128s)
                if self.owner(ip) in (None, container_id):
                    with open(os.path.join(self.dir, str(ip)), "w") as f:
                        f.write(container_id)
                    return ip
        raise PluginError(TRY_AGAIN, "no free address in this node's blocks",
                          ", ".join(map(str, blocks)))

    def find(self, container_id: str) -> list:
        """The container's addresses, IPv4 first."""
        found = [ipaddress.ip_address(name)
                 for name in (os.listdir(self.dir) if os.path.isdir(self.dir) else [])
                 if name != "lock" and self.owner(name) == container_id]
        return sorted(found, key=lambda ip: ip.version)

    def release(self, container_id: str) -> list:
        with self._locked():
            found = self.find(container_id)
            for ip in found:
                os.unlink(os.path.join(self.dir, str(ip)))
            return found


def _allocator(conf):
    return BlockAllocator(conf["ipam"]["dataDir"], conf["_blocks"])


def add(conf: dict, env: dict) -> dict:
    ips = _allocator(conf).allocate(env["id"])
    return {"cniVersion": conf["cniVersion"],
            "ips": [{"address": f"{ip}/{ip.max_prefixlen}"} for ip in ips]}


def delete(conf: dict, env: dict) -> None:
    """Idempotent: a container without an address is not an error."""
    _allocator(conf).release(env["id"])


def check(conf: dict, env: dict) -> None:
    if not _allocator(conf).find(env["id"]):
        raise PluginError(UNKNOWN_CONTAINER, f"no address is allocated to {env['id']}")


def main(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
         env: Mapping[str, str] = os.environ) -> int:
    return skeleton.main(load_config, skeleton.pod_environment, add, delete, check, stdin,
                         stdout, env)


if __name__ == "__main__":
    sys.exit(main())
