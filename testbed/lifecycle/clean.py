"""`testbed clean`: remove what crashed runs left behind, using only their state files.

Nothing is found by a broad name: a process is signalled only if its PID *and* start time match
what the run recorded, a namespace is deleted only if the run recorded it. A run whose owner
(the supervisor, the interactive `up`, the benchmark) still lives is somebody's working cluster
and is left alone unless named (`--name`) or everything is asked for (`--all`).
"""
import os
import shutil
import signal
from collections.abc import Callable

from testbed.host import netns
from testbed.host.processes import (
    Process,
    end_processes_in_all,
    end_together,
    pid_is,
    remove_named_namespaces,
)
from testbed.host.waiting import wait_until
from testbed.kubelet.serviceaccount import release_mount_path
from testbed.model.records import Owned
from testbed.model.state import RunState, list_runs
from testbed.underlay.names import is_underlay_shell, shell_namespaces

SUPERVISOR_GRACE_S = 30  # a live supervisor gets this long to tear its cluster down itself


def _stop_supervisor(state, log):
    sup = state.supervisor
    if not sup or not pid_is(sup.pid, sup.start):
        return []
    log(f"{state.name}: asking supervisor (pid {sup.pid}) to tear the cluster down")
    os.kill(sup.pid, signal.SIGTERM)
    wait_until(lambda: not pid_is(sup.pid, sup.start), SUPERVISOR_GRACE_S, every=0.1)
    if pid_is(sup.pid, sup.start):
        os.kill(sup.pid, signal.SIGKILL)
    return [f"cluster {state.name} (torn down by its owner, pid {sup.pid})"]


def clean_run(run_dir: str, log: Callable[[str], None] = print) -> tuple[list, list]:
    """Remove one run's leftovers; returns (removed, left): what it removed, and what it
    could not (whose records it keeps in the state file, so that a later clean goes on)."""
    removed = []
    try:
        state = RunState.load(run_dir)
    except (OSError, ValueError):
        state = None
    if state is not None:
        removed += _stop_supervisor(state, log)
        try:  # the supervisor may have cleaned up and removed the state file meanwhile
            state = RunState.load(run_dir)
        except (OSError, ValueError):
            state = None
    left = []
    if state is not None:
        removed += _remove_owned(state, run_dir)
        left = still_present(state, run_dir)
        keep_only(state, left)
    if not left and os.path.exists(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(f"dir {run_dir}")
    for item in removed:
        log(f"removed {item}")
    for item in left:
        log(f"could not remove {describe(item)}")
    return removed, left


def _remove_owned(state, run_dir):
    removed = []
    alive = [e for e in state.owned.pids if pid_is(e.pid, e.start)]
    shells = shell_namespaces(alive)
    # containers and daemons first, then the Mininet shells that hold node namespaces
    for group in ([e for e in alive if not is_underlay_shell(e)],
                  [e for e in alive if is_underlay_shell(e)]):
        end_together([(e.pid, e.start) for e in group])
        removed += [f"process {e.pid} ({e.what})" for e in group]
    # what else ran in the nodes, routers and racks
    removed += [f"process {pid} (left in a node)" for pid in end_processes_in_all(shells)]
    present, held = set(netns.netns_list()), netns.outside_holders(state.owned.netns)
    # held ones stay: still_present() reports them and their records are kept
    names = [n for n in state.owned.netns if n in present and n not in held]
    removed += [f"process {pid} (left in a namespace)"
                for pid in remove_named_namespaces(names)]
    removed += [f"netns {name}" for name in names]
    for name in state.owned.links:
        if os.path.exists(f"/sys/class/net/{name}"):  # root-namespace links only
            netns.run(["ip", "link", "del", name], check=False)
            removed.append(f"link {name}")
    for path in state.owned.dirs:
        if path != run_dir and os.path.exists(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"dir {path}")
    return removed


def still_present(state: RunState, run_dir: str) -> list[tuple[str, object]]:
    """[(kind, item)] of what the run recorded and still exists (its own directory aside)."""
    present = set(netns.netns_list())
    out = [("pids", e) for e in state.owned.pids if pid_is(e.pid, e.start)]
    out += [("netns", n) for n in state.owned.netns if n in present]
    out += [("links", n) for n in state.owned.links if os.path.exists(f"/sys/class/net/{n}")]
    out += [("dirs", d) for d in state.owned.dirs if d != run_dir and os.path.exists(d)]
    return out


def keep_only(state: RunState, left: list[tuple[str, object]]) -> None:
    """Records of what is gone are dropped; those of what is left stay, for the next clean."""
    owned = Owned()
    for kind, item in left:
        getattr(owned, kind).append(item)
    owned.dirs = [d for d in state.owned.dirs if d == state.dir] + owned.dirs
    state.owned = owned
    if left:
        state.status = "teardown incomplete"
    if os.path.isdir(state.dir):
        state.save()


KIND_WORDS = {"netns": "netns", "links": "link", "dirs": "dir"}


def describe(item: tuple[str, object]) -> str:
    kind, what = item
    if kind == "pids":
        return f"process {what.pid} ({what.what})"
    return f"{KIND_WORDS[kind]} {what}"


def owner_alive(run_dir: str) -> tuple[bool, Process | None]:
    """(alive, owner) of a run: its recorded owner's PID and start time still match."""
    try:
        owner = RunState.load(run_dir).supervisor
    except (OSError, ValueError):
        return False, None
    return owner is not None and pid_is(owner.pid, owner.start), owner


def clean_all(log: Callable[[str], None] = print,
              include_live: bool = False) -> tuple[list, list, list[str]]:
    """Clean every run whose owner died (every run with include_live); returns
    (removed, left: what could not be removed, spared: names of live runs left alone)."""
    removed, left, spared = [], [], []
    for run_dir in list_runs():
        alive, owner = owner_alive(run_dir)
        if alive and not include_live:
            name = os.path.basename(run_dir)
            spared.append(name)
            log(f"cluster {name} is live (owner pid {owner.pid}): left alone "
                f"(`testbed down --name {name}`, or `testbed clean --name {name}`)")
            continue
        gone, still = clean_run(run_dir, log)
        removed += gone
        left += still
    if not spared:
        release_mount_path()
    if not removed and not left:
        log("nothing to clean")
    return removed, left, spared
