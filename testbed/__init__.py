"""An emulated Kubernetes pod network: real namespaces, bridges, tunnels, daemons and CNI plugins
on one machine, in the shape of the CNI plugins they mirror.

One package per concern: core (a cluster's lifecycle), host (namespaces, processes, daemons),
underlay (racks and routers), modes (one folder per CNI mode), cni (the plugin skeleton and the
runtime's caller), kubelet (sandboxes, containers, stand-ins), api (manifests and Kubernetes
objects), kubeproxy (Services), policy (NetworkPolicy), addons (cluster DNS) and cli.
"""
from pathlib import Path

# the checkout: topologies/ and build/ (what scripts/install.sh compiles) live beside testbed/
REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
