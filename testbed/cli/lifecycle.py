"""Verbs of a cluster's life: up (and --adopt), down, status, clean, doctor."""
import argparse
import os
import signal
import subprocess
import sys
import time

from testbed import REPO
from testbed.api.apply import condensed
from testbed.api.tables import render_table
from testbed.cli.common import DEFAULT_TOPOLOGY, StatusLine, find_run
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.processes import Process, pid_is, process_start_time
from testbed.host.signals import Interrupted, signals_deferred, signals_interrupt
from testbed.host.waiting import wait_until
from testbed.kubeproxy.modes import proxy_mode_names
from testbed.lifecycle import doctor
from testbed.lifecycle.clean import clean_all, clean_run, describe
from testbed.lifecycle.control import PROGRESS, request
from testbed.lifecycle.preflight import check_name_free, load_spec
from testbed.model.state import RunState, list_runs, run_dir_for
from testbed.model.topology import IP_FAMILIES
from testbed.modes import get_mode, mode_names
from testbed.modes.base import DEFAULT as DEFAULT_MODE


def _mode_for(spec, args):
    return args.mode or spec.mode or DEFAULT_MODE


def _summary(state, seconds):
    text = (f"cluster {state.name} is up in {seconds:.1f} s: mode {state.mode}, "
            f"{len(state.nodes)} nodes, {len(state.pods)} pods, pod MTU {state.pod_mtu}")
    text += "".join(f"\nwarning: {w}" for w in condensed(state.warnings))
    if state.fabric:
        text += f"\nunderlay: {state.fabric['description']}"
    if state.mode_facts.get("description"):
        text += f"\n{state.mode}: {state.mode_facts['description']}"
    if state.control_plane:
        text += (f"\nAPI server {state.control_plane['server']} (etcd "
                 f"{state.control_plane['etcd']}): export KUBECONFIG="
                 f"{state.control_plane['kubeconfig']}, then kubectl get nodes; or "
                 f"`testbed kubeconfig --name {state.name} > FILE` (context "
                 f"{state.control_plane['context']})")
        if state.mode_facts.get("bridges"):
            text += "; `testbed flows NODE` shows a node's flows"
    converged = state.timings.get("bgp_converged_s")
    if converged is not None:
        text += f"\nBGP converged {converged:.2f} s after BIRD started (every node routes " \
                "every other node's blocks)"
    return text


def cmd_up(args: argparse.Namespace) -> int | None:
    if args.adopt:
        return _adopt(args.adopt)
    spec = load_spec(args.topo, args.name, args.underlay, args.proxy_mode, args.ip_family)
    mode = _mode_for(spec, args)
    get_mode(mode).check_families(spec)  # refuse before anything is built or spawned
    get_mode(mode).check(spec)
    if args.no_cli:
        return _up_background(args, spec, mode)
    started = time.monotonic()
    me = Process(os.getpid(), process_start_time(os.getpid()), "interactive up")
    # Mininet comes with these two: only the verbs that build a cluster load it
    from testbed.cli.console import TestbedCLI
    from testbed.lifecycle.cluster import Cluster
    cluster = Cluster.create(spec, mode, verbose=args.verbose, control_plane=True,
                             supervisor=me)
    with signals_interrupt():
        try:
            status = _bring_up_status()
            try:
                cluster.up(progress=status.line)
            finally:
                status.done()
            print(_summary(cluster.state, time.monotonic() - started))
            print("commands: pods, nodes, POD CMD, NODE CMD (names become IPs), exit")
            TestbedCLI(cluster)
        finally:
            try:
                cluster.down()
            finally:
                cluster.remove_run_dir()
    return 0


def _up_background(args, spec, mode):
    started = time.monotonic()
    check_name_free(spec.name)  # before a supervisor is spawned for nothing
    _run_supervisor(["--topo", os.path.abspath(args.topo), "--mode", mode, "--name",
                     spec.name, "--underlay", spec.underlay, "--proxy-mode", spec.proxy_mode,
                     "--ip-family", spec.ip_family] +
                    (["--verbose"] if args.verbose else []), spec.name)
    state = RunState.load(run_dir_for(spec.name))
    print(_summary(state, time.monotonic() - started))
    print(f"next: testbed get pods | testbed exec POD -- CMD | testbed down --name {spec.name}")
    return 0


def _adopt(name):
    """A new supervisor for a cluster whose owner died (adopt.py)."""
    _run_supervisor(["--adopt", "--name", name], name, abort_removes=False)
    state = RunState.load(run_dir_for(name))
    print(f"cluster {name} adopted: supervisor pid {state.supervisor.pid} owns it "
          f"now ({len(state.pods)} pods, {state.mode} mode)")
    return 0


def _run_supervisor(extra, name, abort_removes=True):
    """Start a supervisor and wait for its "ready" (or its error, raised)."""
    argv = [sys.executable, "-m", "testbed.lifecycle.supervisor", *extra]
    # SIGINT too: started in the background by a script, this process inherits SIGINT ignored
    with signals_interrupt(signal.SIGINT):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, start_new_session=True,
                                cwd=str(REPO))
        try:
            report = _read_report(proc.stdout)
        except (KeyboardInterrupt, Interrupted):
            _abort_bring_up(proc, name if abort_removes else None)
            raise
    if not report.startswith("ready"):
        proc.wait()
        message = report.removeprefix("error: ").strip() or f"supervisor exited {proc.returncode}"
        raise TestbedError(message)


def _read_report(stream):
    """The supervisor's report: progress lines (on a terminal, one line rewritten in place)
    until "ready" or "error: ..."; it closes its end then."""
    status = _bring_up_status()
    try:
        for line in stream:
            if line.startswith(PROGRESS):
                status.line(line[len(PROGRESS):].rstrip("\n"))
            else:
                return line + stream.read()
        return ""
    finally:
        status.done()


def _bring_up_status():
    """Where a bring-up's progress goes: a line on the terminal, nowhere in a script's log."""
    if sys.stderr.isatty():
        return StatusLine(sys.stderr)
    return StatusLine(open(os.devnull, "w"))


def _abort_bring_up(proc, name):
    """Stop a supervisor still building (it tears down what it built) and make sure of it;
    name None: only the supervisor (an adoption that is stopped leaves the cluster)."""
    with signals_deferred():
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        run_dir = run_dir_for(name) if name else None
        if run_dir and os.path.isdir(run_dir):
            _removed, left = clean_run(run_dir, log=lambda _msg: None)
            for item in left:
                print(f"testbed: could not remove {describe(item)}", file=sys.stderr)


def cmd_down(args: argparse.Namespace) -> int | None:
    state = find_run(args.name)
    owner = state.supervisor
    started = time.monotonic()

    def alive():
        return owner is not None and pid_is(owner.pid, owner.start)
    if alive():
        if os.path.exists(state.control_socket):
            _down_by_supervisor(state, alive)
        else:  # an interactive `up` or a benchmark: its own signal handling tears down
            os.kill(owner.pid, signal.SIGTERM)
        # the owner exits once its teardown is over, however long it takes
        wait_until(lambda: not alive(), float("inf"))
    removed, left = clean_run(state.dir, log=lambda _msg: None)
    cleaned = [r for r in removed if not r.startswith("dir ")]
    if cleaned:
        print(f"removed {len(cleaned)} leftovers the owner did not remove")
    if left:
        for item in left:
            print(f"testbed: could not remove {describe(item)}", file=sys.stderr)
        print(f"testbed: cluster {state.name} is down but {len(left)} objects are left; their "
              f"records are kept (`testbed clean --name {state.name}` retries)", file=sys.stderr)
        return 1
    print(f"cluster {state.name} is down ({time.monotonic() - started:.1f} s)")
    return 0


def _down_by_supervisor(state, alive):
    """Ask the supervisor to tear down, showing its progress; never signal it meanwhile."""
    shown = StatusLine(sys.stderr)
    try:
        reply = request(state, "down", progress=shown.line, alive=alive)
    except (OSError, ValueError):  # it died, or closed the connection: clean_run takes over
        return
    finally:
        shown.done()
    for problem in reply.get("left", []):
        print(f"teardown: {problem}", file=sys.stderr)


def _orphan_status(state):
    """What a run whose owner died still has: its datapath keeps forwarding until removed."""
    pinned = set(netns.netns_list()) & set(state.owned.netns)
    if not pinned:
        return "owner died, nothing left running (testbed clean)"
    return (f"owner died; datapath still up ({len(pinned)} namespaces): testbed down --name "
            f"{state.name}")


def cmd_status(_args: argparse.Namespace) -> int | None:
    runs = list_runs()
    if not runs:
        print("no cluster is running")
        return 0
    rows = [("NAME", "MODE", "STATUS", "OWNER PID", "TOPOLOGY")]
    for run_dir in runs:
        try:
            state = RunState.load(run_dir)
        except (OSError, ValueError):
            rows.append((os.path.basename(run_dir), "-", "unreadable (testbed clean)", "-", "-"))
            continue
        owner = state.supervisor
        alive = owner is not None and pid_is(owner.pid, owner.start)
        status = state.status if alive else _orphan_status(state)
        dead = [f"{label} {d.state}" for label, d in state.daemons.items() if not d.alive]
        if alive and dead:
            status += "; DEAD: " + ", ".join(dead)
        rows.append((state.name, state.mode, status, owner.pid if owner else "-",
                     state.topology))
    print(render_table(rows))
    return 0


def cmd_doctor(_args: argparse.Namespace) -> int | None:
    checks = doctor.run_checks()
    print(doctor.render(checks))
    caps = doctor.capabilities(checks)
    print("Modes")
    for name in mode_names():
        missing = doctor.missing_for(get_mode(name).requires, caps)
        verdict = "available" if not missing else f"unavailable: missing {', '.join(missing)}"
        print(f"  {name:<10} {verdict}")
    return 1 if any(c.essential and not c.ok for c in checks) else 0


def cmd_clean(args: argparse.Namespace) -> int | None:
    if args.name:
        run_dir = run_dir_for(args.name)
        if not os.path.isdir(run_dir):
            raise TestbedError(f"no cluster named {args.name!r} is running or left behind")
        _removed, left = clean_run(run_dir)
    else:
        if args.all:
            print("testbed clean --all: tearing down every cluster on this machine, live ones "
                  "included", file=sys.stderr)
        _removed, left, _spared = clean_all(include_live=args.all)
    if left:
        print(f"testbed: {len(left)} objects could not be removed (listed above); their "
              "records are kept for the next `testbed clean`", file=sys.stderr)
        return 1
    return 0


def cmd_kubeconfig(args: argparse.Namespace) -> int | None:
    state = find_run(args.name)
    if not state.control_plane:
        raise TestbedError(f"cluster {state.name} runs no API server (clusters the benchmark "
                           "builds have none)")
    with open(state.control_plane["kubeconfig"]) as f:
        sys.stdout.write(f.read())
    return 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """up, down, status, doctor, clean"""
    up = sub.add_parser("up", help="bring a cluster up (interactive CLI unless --no-cli)")
    up.add_argument("--topo", default=str(DEFAULT_TOPOLOGY), help="topology YAML file")
    up.add_argument("--mode", help=f"CNI mode (default: the topology's, else {DEFAULT_MODE})")
    up.add_argument("--name", help="cluster name (default: the topology's)")
    up.add_argument("--underlay", choices=["linux", "ovs"],
                    help="what switches the racks (default: the topology's, else linux)")
    up.add_argument("--proxy-mode", choices=proxy_mode_names(),
                    help="kube-proxy's mode (default: the topology's kubeProxy.mode, else "
                    f"kube-proxy's: {proxy_mode_names()[0]})")
    up.add_argument("--ip-family", choices=list(IP_FAMILIES),
                    help="the cluster's IP families, as kind's ipFamily (default: the "
                    "topology's ipFamily, else ipv4)")
    up.add_argument("--no-cli", action="store_true",
                    help="leave the cluster running in the background and return")
    up.add_argument("-v", "--verbose", action="store_true", help="show Mininet's progress")
    up.add_argument("--adopt", metavar="NAME",
                    help="own cluster NAME, whose owner died while its datapath kept running: "
                    "a new supervisor takes it over from its records")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="tear a running cluster down")
    down.add_argument("--name")
    down.set_defaults(func=cmd_down)

    sub.add_parser("status", help="list running clusters").set_defaults(func=cmd_status,
                                                                       root=False)
    sub.add_parser("doctor", help="what this machine offers").set_defaults(func=cmd_doctor)
    clean = sub.add_parser("clean", help="remove what runs whose owner died left behind "
                           "(live clusters are left alone)")
    which = clean.add_mutually_exclusive_group()
    which.add_argument("--name", help="this cluster only, even if it is live")
    which.add_argument("--all", action="store_true",
                       help="every cluster on the machine, live ones included")
    clean.set_defaults(func=cmd_clean)

    config = sub.add_parser("kubeconfig", help="print the kubeconfig that reaches a cluster's "
                            "API server (as `kind get kubeconfig` does)")
    config.add_argument("--name")
    config.set_defaults(func=cmd_kubeconfig)

