"""kube-proxy's modes, one module each holding everything of that mode: its renderer (the
node's rules from the Services, pure), its applier (a ProxyApplier that brings every node up
to date) and how it describes a Service's chains. A module registers its applier with
@register; the registry imports every module of this package when first read, so adding a
kube-proxy mode is adding a module here.
"""
import importlib
import pkgutil

from testbed.kubeproxy.applier import ProxyApplier

DEFAULT = "iptables"  # what kube-proxy runs on Linux when its mode is left empty

_REGISTRY: dict[str, type[ProxyApplier]] = {}


def register(cls: type[ProxyApplier]) -> type[ProxyApplier]:
    """Register a ProxyApplier subclass under its name."""
    if cls.name in _REGISTRY:
        raise RuntimeError(f"kube-proxy mode {cls.name} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def proxy_mode_names() -> list[str]:
    """The registered modes, kube-proxy's default first."""
    _discover()
    return sorted(_REGISTRY, key=lambda name: (name != DEFAULT, name))


def get_proxy_mode(name: str) -> type[ProxyApplier]:
    """The applier class of kube-proxy mode `name` ("": kube-proxy's default)."""
    _discover()
    return _REGISTRY[name or DEFAULT]
