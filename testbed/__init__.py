"""An emulated Kubernetes pod network: real namespaces, bridges, tunnels, daemons and CNI plugins
on one machine, in the shape of the CNI plugins they mirror.

Packages in layers, each importing only those below it (the import-linter contract in
pyproject.toml, checked by `make lint`; docs/internals.md draws them): the CLI on top; the
lifecycle (a cluster's build, supervisor, clean, adopt, doctor); the API's controllers and the
tracer; the API server and the modes (one folder per CNI mode); the API objects' machinery
(api); Ingress and the add-ons (cluster DNS); kube-proxy, the kubelet role, the underlay
(racks and routers) and NetworkPolicy; the cluster's credentials (auth) and the CNI plugins'
skeleton; the model (topology, spec, records, state, ipam); the manifests' types and
decoding; host mechanics (namespaces, processes, daemons) at the bottom.
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
