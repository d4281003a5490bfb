"""The names of the namespaces a run pins (nodes, racks, routers: `<name>.<cluster>`), how to
run a command in one, and how the state names the shells holding them. Light on purpose:
inspecting and cleaning need no Mininet."""
from collections.abc import Iterable, Sequence

from testbed.host import netns
from testbed.host.processes import Process, pid_is
from testbed.model.records import HostRecord
from testbed.model.state import RunState

SHELL_LABEL = "mininet shell of "  # how the state file names the shells holding namespaces


def pinned_name(node_name: str, cluster: str) -> str:
    """The /run/netns name of a node's, rack's or router's namespace."""
    return f"{node_name}.{cluster}"


def in_host(state: RunState, name: str, record: HostRecord,
            command: Sequence[object]) -> list[str]:
    """argv running `command` in a node's or host's namespace: by its pinned name, which
    outlives the shell that made it (an owner that died), else by the shell's PID."""
    pinned = pinned_name(name, state.name)
    if pinned in state.owned.netns and pinned in netns.netns_list():
        return netns.in_pod(pinned, command)
    return netns.in_node(record.pid, command)


def is_underlay_shell(owned_pid: Process) -> bool:
    """Is this recorded process a Mininet shell (one per node, rack and router)?"""
    return owned_pid.what.startswith(SHELL_LABEL)


def shell_namespaces(owned_pids: Iterable[Process]) -> list[int | None]:
    """The network namespaces of the live Mininet shells among recorded processes: what to
    look in for leftovers once the shells are gone."""
    return [netns.namespace_id(f"/proc/{e.pid}/ns/net") for e in owned_pids
            if is_underlay_shell(e) and pid_is(e.pid, e.start)]
