"""An emulated Kubernetes pod network: real namespaces, bridges, tunnels, daemons and CNI plugins
on one machine, in the shape of the CNI plugins they mirror.

One package per concern: core (a cluster's lifecycle), host (namespaces, processes, daemons),
underlay (racks and routers), modes (one folder per CNI mode), cni (the plugin skeleton and the
runtime's caller), kubelet (sandboxes, containers, stand-ins), api (manifests and Kubernetes
objects), kubeproxy (Services), ingress (the Ingress controller), policy (NetworkPolicy),
addons (cluster DNS) and cli.
"""
import os


def __getattr__(name):
    """REPO, the checkout (topologies/ and build/ live beside testbed/), and BUILD, what
    scripts/install.sh compiles: as pathlib Paths, made when first asked for, so that a CNI
    plugin run once per pod does not load pathlib for nothing."""
    if name in ("REPO", "BUILD"):
        from pathlib import Path
        repo = Path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        return repo if name == "REPO" else repo / "build"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
