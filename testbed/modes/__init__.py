"""CNI modes, one folder each holding everything of that mode: its setup, its plugin, its daemon
configs and its doctor requirements. A mode registers itself by name (base.register); the core
finds it with get_mode(). Adding a mode is adding a folder: every package here is imported
when the registry is first read.
"""
from testbed.modes.base import (  # noqa: F401
    ClusterContext,
    Mode,
    NodeContext,
    get_mode,
    mode_names,
    register,
)
