"""`testbed clean`: remove what crashed runs left behind, using only their state files.

Nothing is found by a broad name: a process is signalled only if its PID *and* start time match
what the run recorded, a namespace is deleted only if the run recorded it.
"""
import os
import shutil
import signal
import time

from . import netns
from .runtime import end_processes_in, terminate
from .state import RunState, list_runs, pid_is
from .underlay import is_underlay_shell, shell_namespaces

SUPERVISOR_GRACE_S = 30  # a live supervisor gets this long to tear its cluster down itself


def _stop_supervisor(state, log):
    sup = state.data.get("supervisor")
    if not sup or not pid_is(sup["pid"], sup["start"]):
        return []
    log(f"{state.name}: asking supervisor (pid {sup['pid']}) to tear the cluster down")
    os.kill(sup["pid"], signal.SIGTERM)
    deadline = time.monotonic() + SUPERVISOR_GRACE_S
    while time.monotonic() < deadline and pid_is(sup["pid"], sup["start"]):
        time.sleep(0.1)
    if pid_is(sup["pid"], sup["start"]):
        os.kill(sup["pid"], signal.SIGKILL)
    return [f"cluster {state.name} (torn down by its owner, pid {sup['pid']})"]


def clean_run(run_dir, log=print):
    """Remove one run's leftovers; returns a list of what was removed."""
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
    if state is not None:
        pids = state.owned("pids")
        # containers and daemons first, then the Mininet shells that hold node namespaces
        pids.sort(key=is_underlay_shell)
        left = shell_namespaces(pids)
        for entry in pids:
            if pid_is(entry["pid"], entry["start"]):
                terminate(entry["pid"], entry["start"])
                removed.append(f"process {entry['pid']} ({entry['what']})")
        for ns_id in left:  # what else ran in the nodes, routers and racks
            removed += [f"process {pid} (left in a node)" for pid in end_processes_in(ns_id)]
        present = set(netns.netns_list())
        for name in state.owned("netns"):
            if name in present:
                removed += [f"process {pid} (left in pod {name})" for pid in
                            end_processes_in(netns.namespace_id(netns.netns_path(name)))]
                netns.run(["ip", "netns", "del", name], check=False)
                removed.append(f"netns {name}")
        for name in state.owned("links"):
            if os.path.exists(f"/sys/class/net/{name}"):  # root-namespace links only
                netns.run(["ip", "link", "del", name], check=False)
                removed.append(f"link {name}")
        for path in state.owned("dirs"):
            if path != run_dir and os.path.exists(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(f"dir {path}")
    if os.path.exists(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(f"dir {run_dir}")
    for item in removed:
        log(f"removed {item}")
    return removed


def clean_all(log=print):
    removed = []
    for run_dir in list_runs():
        removed += clean_run(run_dir, log)
    if not removed:
        log("nothing to clean")
    return removed
