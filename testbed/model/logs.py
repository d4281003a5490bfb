"""What has logs in a run, by name: every container's output (pods/<ns>/<pod>/<c>.log) and
every other log the run writes — the mode's daemons (BIRD, udp forwarders, OVS, the OpenFlow
controller), kube-proxy's syncs, the DNS server, the supervisor — named `<what>@<where>`
(`bird@node1`, `kube-proxy@node2`, `ovs-vswitchd@node1`, `controller@openflow`) from where
the file lies in the run directory."""
import os

from testbed.model.state import RunState

SUFFIXES = (".log", ".out")  # a daemon's own log, and its stdout and stderr


def container_logs(state: RunState) -> dict[tuple[str, str], str]:
    """{(pod key, container): its output file}."""
    return {(key, name): os.path.join(state.dir, "pods", key, f"{name}.log")
            for key, pod in sorted(state.pods.items()) for name in pod.containers}


def other_logs(state: RunState) -> dict[str, str]:
    """{name: path} of every log in the run directory that is not a container's."""
    containers = set(container_logs(state).values())
    hosts = set(state.nodes) | set(state.routers) | set(state.hosts)
    pods = {pod.name for pod in state.pods.values()}
    found = {}
    for top, _dirs, files in os.walk(state.dir):
        for file in sorted(files):
            path = os.path.join(top, file)
            if not file.endswith(SUFFIXES) or path in containers:
                continue
            found[log_name(os.path.relpath(path, state.dir), hosts | pods)] = path
    return dict(sorted(found.items()))


def log_name(relative: str, places: set[str]) -> str:
    """`<what>@<where>` of a log file: `where` the deepest folder naming a node, router, host
    or pod, else the folder it is in (a rack's, `openflow`); `what` the file's name without
    its suffix (`.out` kept) or its place's prefix. A log at the top is its name alone."""
    parts = relative.split(os.sep)
    where = next((p for p in reversed(parts[:-1]) if p in places),
                 parts[-2] if len(parts) > 1 else None)
    stem, suffix = os.path.splitext(parts[-1])
    if where and stem.startswith(f"{where}."):
        stem = stem[len(where) + 1:]
    what = stem + (suffix if suffix == ".out" else "")
    return f"{what}@{where}" if where else what
