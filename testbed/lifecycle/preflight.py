"""Before anything is built: the topology loaded with the command line's overrides, and every
refusal a cluster can meet decided up front (a mode, kube-proxy mode or underlay this machine
cannot run, a cluster name in use), so that a refused `up` leaves nothing behind."""
import dataclasses
import os

from testbed.errors import TestbedError
from testbed.host.processes import pid_is
from testbed.kubeproxy.modes import get_proxy_mode, proxy_mode_names
from testbed.lifecycle import doctor
from testbed.model import spec as specmod
from testbed.model.state import RunState, run_dir_for
from testbed.model.topology import ClusterSpec
from testbed.modes import get_mode, mode_names, option_readers


def load_spec(path: str, name: str | None = None, underlay: str | None = None,
              proxy_mode: str | None = None, ip_family: str | None = None) -> ClusterSpec:
    """Read a topology, checking its mode against the registry; `name` renames the cluster,
    `underlay` (linux or ovs), `proxy_mode` (kube-proxy's) and `ip_family` (ipv4, ipv6,
    dual) override the topology's."""
    spec = specmod.load(path, known_modes=mode_names(), options=option_readers(),
                        proxy_modes=proxy_mode_names(), ip_family=ip_family)
    if name and not specmod.valid_cluster_name(name):
        raise specmod.SpecError("--name", None, name, specmod.CLUSTER_NAME_RULE)
    if underlay and underlay not in specmod.UNDERLAYS:
        raise specmod.SpecError("--underlay", None, underlay,
                                f"must be one of {', '.join(specmod.UNDERLAYS)}")
    if proxy_mode and proxy_mode not in proxy_mode_names():
        raise specmod.SpecError("--proxy-mode", None, proxy_mode,
                                f"must be one of {', '.join(proxy_mode_names())}")
    return dataclasses.replace(spec, name=name or spec.name, underlay=underlay or spec.underlay,
                               proxy_mode=proxy_mode or spec.proxy_mode)


BARE = "bare"  # the underlay alone: nodes and racks, no CNI mode and no pods
OVS_UNDERLAY_NEEDS = ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "os-ken")


def check_mode(mode_name: str, spec: ClusterSpec, caps: dict[str, bool]) -> None:
    """Refuse a mode this machine cannot run (caps from doctor) or that cannot wire `spec`."""
    mode = get_mode(mode_name)
    missing = doctor.missing_for(mode.requires, caps)
    if missing:
        raise TestbedError(f"mode {mode_name} needs {', '.join(missing)}, which this "
                           "machine lacks (see `testbed doctor`)")
    mode.check_families(spec)
    mode.check(spec)
    if spec.policy_enforce and mode.policy_hook is None:
        raise TestbedError(f"{spec.path}: networkPolicy.enforce: mode {mode_name} cannot "
                           f"enforce NetworkPolicy: {mode.policy_note}")


def check_proxy_mode(spec: ClusterSpec, caps: dict[str, bool]) -> None:
    """kube-proxy's mode needs its packet filter (or IPVS and its tools) on the machine."""
    proxy = get_proxy_mode(spec.proxy_mode)
    lacking = [family for family in spec.families if family not in proxy.ip_families]
    if lacking:
        serving = [name for name in proxy_mode_names()
                   if all(f in get_proxy_mode(name).ip_families for f in spec.families)]
        named = " or ".join([", ".join(serving[:-1]), serving[-1]] if len(serving) > 1
                            else serving)
        raise TestbedError(f"{spec.path}: ipFamily {spec.ip_family}: kube-proxy mode "
                           f"{proxy.name} serves no {' or '.join(lacking)} Services here yet; "
                           f"kubeProxy: {{mode: {named}}} does")
    missing = doctor.missing_for(tuple(proxy.needs), caps)
    if missing:
        usable = [name for name in proxy_mode_names()
                  if not doctor.missing_for(tuple(get_proxy_mode(name).needs), caps)]
        hint = f"; kubeProxy: {{mode: {' or '.join(usable)}}} works here" if usable else ""
        raise TestbedError(f"{spec.path}: kube-proxy mode {proxy.name} needs "
                           f"{', '.join(proxy.needs[m] for m in missing)}, which this machine "
                           f"lacks (see `testbed doctor`){hint}")


def check_underlay(spec: ClusterSpec, caps: dict[str, bool]) -> None:
    if spec.underlay == "ovs":
        missing = doctor.missing_for(OVS_UNDERLAY_NEEDS, caps)
        if missing:
            raise TestbedError(f"{spec.path}: underlay ovs needs {', '.join(missing)}, which "
                               "this machine lacks (see `testbed doctor`)")


def check_name_free(name: str) -> None:
    """Refuse a cluster name in use, saying by whom and what to do."""
    run_dir = run_dir_for(name)
    if not os.path.isdir(run_dir):
        return
    try:
        state = RunState.load(run_dir)
    except (OSError, ValueError, TypeError):
        state = None
    owner = state.supervisor if state else None
    if owner and pid_is(owner.pid, owner.start):
        raise TestbedError(f"cluster {name!r} is already running ({state.mode} mode, owner "
                           f"pid {owner.pid}): reach it with `testbed get pods --name {name}`"
                           f", or take it down with `testbed down --name {name}`")
    raise TestbedError(f"a cluster named {name!r} was left behind by a run whose owner died: "
                       f"`testbed clean --name {name}` removes it")
