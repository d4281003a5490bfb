"""CNI modes: one module each, registered by name (see base.py)."""
from .base import Mode, NodeContext, get_mode, mode_names, register  # noqa: F401
