"""CNI modes, one folder each holding everything of that mode: its setup, its plugin, its daemon
configs and its doctor requirements. A mode registers itself by name (base.register); the lifecycle
finds it with get_mode(). Adding a mode is adding a folder whose package names, in
`REGISTERING`, the modules that register its modes: every such package is imported when the
registry is first read.

Nothing is imported here until asked for, so that a CNI plugin of a mode (an executable run
once per pod) loads its own few modules and not the whole testbed.
"""
import importlib

_FROM_BASE = ("ClusterContext", "Mode", "NodeContext", "cni_plugins", "get_mode", "mode_names",
              "option_readers", "probes", "register", "services_by")
__all__ = list(_FROM_BASE)


def __getattr__(name):
    if name in _FROM_BASE:
        return getattr(importlib.import_module("testbed.modes.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
