"""What every flannel backend shares: leases, subnet.env, and pods on cni0.

Not a mode itself. Flannel's CNI plugin reads subnet.env and delegates to the reference
`bridge` plugin (bridge cni0, gateway .1) with `host-local` IPAM over the node's lease.
"""
import os

from testbed.core import ipam
from testbed.modes.base import Mode

CNI_BRIDGE = "cni0"
NETWORK_NAME = "cbr0"  # the network name in kube-flannel's cni-conf.json


class FlannelMode(Mode):
    requires = ("bridge", "veth")
    adoptable = True
    policy_hook = "bridged"  # flannel enforces nothing; Canal adds Felix on the pods' veths
    policy_note = "flannel enforces no NetworkPolicy (topology networkPolicy: {enforce: true} " \
        "adds it as Canal does)"

    def check(self, spec):
        ipam.check_lease_room(spec)

    def plan(self, spec):
        return ipam.node_leases(spec)

    def setup_node(self, spec, node):
        env_dir = os.path.join(node.dir, "run", "flannel")
        node.facts["subnet_env"] = ipam.write_subnet_env(
            env_dir, spec.pod_cidr, node.lease, self.pod_mtu(spec))
        self.setup_backend(spec, node)

    def setup_backend(self, spec, node):
        """The backend's own devices on the node."""

    def network_config(self, spec, node):
        env = ipam.parse_subnet_env(open(node.facts["subnet_env"]).read())
        return {
            "cniVersion": "1.0.0",
            "name": NETWORK_NAME,
            "type": "bridge",
            "bridge": CNI_BRIDGE,
            "isGateway": True,
            "isDefaultGateway": True,
            "hairpinMode": True,
            "ipMasq": False,  # never masquerade: emulated traffic must not leave the emulation
            "mtu": int(env["FLANNEL_MTU"]),
            "ipam": {
                "type": "host-local",
                "dataDir": os.path.join(node.dir, "cni", "networks"),
                "ranges": [[{"subnet": str(node.lease)}]],
                "routes": [{"dst": env["FLANNEL_NETWORK"]}],
            },
        }

    def describe_node(self, node):
        return {"lease": str(node.lease)}
