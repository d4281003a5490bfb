"""The `testbed` command."""
import argparse
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testbed.api.tables import find_pod, render_table
from testbed.core import doctor
from testbed.core.clean import clean_all, clean_run, describe
from testbed.core.cluster import (
    Cluster,
    Interrupted,
    check_name_free,
    load_spec,
    signals_deferred,
    signals_interrupt,
)
from testbed.core.spec import PROXY_MODES
from testbed.core.state import RunState, list_runs, run_dir_for
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.processes import pid_is, process_start_time
from testbed.modes import get_mode, mode_names
from testbed.underlay.racks import pinned_name

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TOPOLOGY = REPO / "topologies" / "default.yaml"
DEFAULT_MODE = "vxlan"


def _mode_for(spec, args):
    return args.mode or spec.mode or DEFAULT_MODE


def _summary(state, seconds):
    data = state.data
    text = (f"cluster {data['name']} is up in {seconds:.1f} s: mode {data['mode']}, "
            f"{len(data['nodes'])} nodes, {len(data['pods'])} pods, pod MTU {data['pod_mtu']}")
    from testbed.api.apply import condensed
    text += "".join(f"\nwarning: {w}" for w in condensed(data.get("warnings", [])))
    fabric, openflow = data.get("fabric"), data.get("openflow")
    if fabric:
        text += f"\nunderlay: {fabric['description']}"
    if openflow:
        text += f"\nopenflow: {openflow['description']}; `testbed flows NODE` shows a node's flows"
    converged = (data.get("timings") or {}).get("bgp_converged_s")
    if converged is not None:
        text += f"\nBGP converged {converged:.2f} s after BIRD started (every node routes " \
                "every other node's blocks)"
    return text


# --- up / down ---------------------------------------------------------------------------
def cmd_up(args):
    if args.adopt:
        return _adopt(args.adopt)
    spec = load_spec(args.topo, args.name, args.underlay, args.proxy_mode)
    mode = _mode_for(spec, args)
    get_mode(mode).check(spec)  # refuse before anything is built or spawned
    if args.no_cli:
        return _up_background(args, spec, mode)
    started = time.monotonic()
    me = {"pid": os.getpid(), "start": process_start_time(os.getpid())}
    cluster = Cluster.create(spec, mode, verbose=args.verbose, supervisor=me)
    with signals_interrupt():
        try:
            cluster.up()
            print(_summary(cluster.state, time.monotonic() - started))
            print("commands: pods, nodes, POD CMD, NODE CMD (names become IPs), exit")
            from testbed.cli.console import TestbedCLI
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
                     spec.name, "--underlay", spec.underlay, "--proxy-mode", spec.proxy_mode] +
                    (["--verbose"] if args.verbose else []), spec.name)
    state = RunState.load(run_dir_for(spec.name))
    print(_summary(state, time.monotonic() - started))
    print(f"next: testbed get pods | testbed exec POD -- CMD | testbed down --name {spec.name}")
    return 0


def _adopt(name):
    """A new supervisor for a cluster whose owner died (adopt.py)."""
    _run_supervisor(["--adopt", "--name", name], name, abort_removes=False)
    state = RunState.load(run_dir_for(name))
    print(f"cluster {name} adopted: supervisor pid {state.data['supervisor']['pid']} owns it "
          f"now ({len(state.data['pods'])} pods, {state.data['mode']} mode)")
    return 0


def _run_supervisor(extra, name, abort_removes=True):
    """Start a supervisor and wait for its "ready" (or its error, raised)."""
    argv = [sys.executable, "-m", "testbed.core.supervisor", *extra]
    # SIGINT too: started in the background by a script, this process inherits SIGINT ignored
    with signals_interrupt(signal.SIGINT):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, start_new_session=True,
                                cwd=str(REPO))
        try:
            report = proc.stdout.read()  # the supervisor closes its end when ready or failed
        except (KeyboardInterrupt, Interrupted):
            _abort_bring_up(proc, name if abort_removes else None)
            raise
    if not report.startswith("ready"):
        proc.wait()
        message = report.removeprefix("error: ").strip() or f"supervisor exited {proc.returncode}"
        raise TestbedError(message)


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


def find_run(name):
    if name:
        run_dir = run_dir_for(name)
        if not os.path.isdir(run_dir):
            raise TestbedError(f"no cluster named {name!r} is running")
        return RunState.load(run_dir)
    runs = list_runs()
    if not runs:
        raise TestbedError("no cluster is running (start one with `testbed up`)")
    if len(runs) > 1:
        names = ", ".join(os.path.basename(r) for r in runs)
        raise TestbedError(f"several clusters are running ({names}): choose one with --name")
    return RunState.load(runs[0])


def cmd_down(args):
    state = find_run(args.name)
    owner = state.data.get("supervisor") or {}
    started = time.monotonic()

    def alive():
        return pid_is(owner.get("pid"), owner.get("start"))
    if alive():
        if os.path.exists(state.control_socket):
            _down_by_supervisor(state, alive)
        else:  # an interactive `up` or a benchmark: its own signal handling tears down
            os.kill(owner["pid"], signal.SIGTERM)
        while alive():  # the owner exits once its teardown is over, however long it takes
            time.sleep(0.05)
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


class StatusLine:
    """One line of progress, rewritten in place on a terminal; elsewhere only the last one."""

    def __init__(self, stream):
        self.stream, self.last = stream, ""
        self.tty = stream.isatty()

    def line(self, text):
        self.last = text
        if self.tty:
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()

    def done(self):
        if self.tty and self.last:
            self.stream.write("\r\033[K")
        elif self.last:
            self.stream.write(self.last + "\n")
        self.stream.flush()


def _down_by_supervisor(state, alive):
    """Ask the supervisor to tear down, showing its progress; never signal it meanwhile."""
    from testbed.core.supervisor import request
    shown = StatusLine(sys.stderr)
    try:
        reply = request(state, "down", progress=shown.line, alive=alive)
    except (OSError, ValueError):  # it died, or closed the connection: clean_run takes over
        return
    finally:
        shown.done()
    for problem in reply.get("left", []):
        print(f"teardown: {problem}", file=sys.stderr)


def cmd_apply(args):
    """Manifests into (or, with delete, out of) the running cluster, through its owner."""
    from testbed.api import manifests
    from testbed.api.apply import report
    from testbed.core.supervisor import request
    state = find_run(args.name)
    path = os.path.abspath(args.filename)
    manifests.load(path)  # a bad file is refused here, before the cluster is asked
    owner = state.data.get("supervisor") or {}
    if not os.path.exists(state.control_socket) or not pid_is(owner.get("pid"),
                                                               owner.get("start")):
        raise TestbedError(f"cluster {state.name} is run by an interactive `testbed up`: use "
                           f"`{args.command} -f {args.filename}` at its prompt")
    reply = request(state, args.command, path=path)
    warnings, done = report(reply, args.command)
    for line in warnings:
        print(line, file=sys.stderr)
    if not reply.get("ok"):
        raise TestbedError(reply.get("error"))
    print("\n".join(done))
    return 0


# --- inspecting a running cluster -------------------------------------------------------
def _hosts(data):
    return {**data["nodes"], **data.get("routers", {}), **data.get("hosts", {})}


def cmd_exec(args):
    """A command in a pod (of -n's namespace, or NAMESPACE/POD) or in a node or host."""
    from testbed.kubelet.standins import AGNHOST_PATHS, stand_in
    state = find_run(args.name)
    command = args.argv
    if not command:
        raise TestbedError("give a command after --, e.g. testbed exec node1-pod1 -- ip addr")
    data = state.data
    hosts = _hosts(data)
    try:
        _key, pod = find_pod(data, args.target, args.namespace)
    except TestbedError:
        if args.target not in hosts:
            raise TestbedError(f"no pod {args.target!r} in namespace {args.namespace} and no "
                               f"node or host of that name in cluster {state.name} (nodes and "
                               f"hosts: {', '.join(hosts)}; `testbed get pods -A` lists pods)")
        return subprocess.call(_in_host(state, args.target, hosts[args.target], command))
    if command[0] in AGNHOST_PATHS:  # the image's binary, as upstream's tests exec it
        command = stand_in(pod["name"]) + command[1:]
    return subprocess.call(netns.in_pod(pod["netns"], command))


def cmd_logs(args):
    """A container's output, as `kubectl logs` shows it."""
    state = find_run(args.name)
    key, pod = find_pod(state.data, args.pod, args.namespace)
    containers = list(pod["containers"])
    container = args.container
    if container is None:
        if len(containers) != 1:
            raise TestbedError(f"a container name must be specified for pod {pod['name']}, "
                               f"choose one of: [{' '.join(containers)}] (-c)")
        container = containers[0]
    if container not in containers:
        raise TestbedError(f"container {container} is not valid for pod {pod['name']} "
                           f"(containers: {', '.join(containers)})")
    path = os.path.join(state.dir, "pods", key, f"{container}.log")
    with open(path, errors="replace") as f:
        sys.stdout.write(f.read())
    return 0


def cmd_describe(args):
    from testbed.api.describe import describe
    state = find_run(args.name)
    print(describe(state.data, args.kind, args.object, args.namespace))
    return 0


def _in_host(state, name, record, command):
    """argv running `command` in a node's or host's namespace: by its pinned name, which
    outlives the shell that made it (an owner that died), else by the shell's PID."""
    pinned = pinned_name(name, state.name)
    if pinned in state.owned("netns") and pinned in netns.netns_list():
        return netns.in_pod(pinned, command)
    return netns.in_node(record["pid"], command)


def cmd_routes(args):
    """A node's routes, and its BGP sessions where the mode runs BIRD."""
    state = find_run(args.name)
    data = state.data
    record = data["nodes"].get(args.node) or data.get("routers", {}).get(args.node)
    if record is None:
        raise TestbedError(f"no node {args.node!r} in cluster {state.name} "
                           f"(nodes: {', '.join(data['nodes'])})")
    print(f"# ip route ({args.node})")
    print(netns.run(_in_host(state, args.node, record, ["ip", "route"])).rstrip())
    socket_path = record.get("bird_socket") or (
        os.path.join(state.dir, "router", "bird", "bird.ctl") if args.node in
        data.get("routers", {}) and data["mode"] == "bgp" else None)
    if socket_path and os.path.exists(socket_path):
        from testbed.modes.bgp.bird import birdc
        print("\n# BGP sessions (birdc show protocols)")
        print(birdc(socket_path, "show", "protocols").rstrip())
    return 0


def cmd_flows(args):
    """A bridge's flows (ovs-ofctl dump-flows) and how often its controller was asked: a
    rack's (underlay: ovs) or a node's br-int (openflow mode)."""
    state = find_run(args.name)
    fabric, openflow = state.data.get("fabric") or {}, state.data.get("openflow") or {}
    bridges = {rack: ("fabric", facts["mgmt"], fabric["control_socket"])
               for rack, facts in fabric.get("racks", {}).items()}
    bridges.update({node: ("openflow", mgmt, openflow["control_socket"])
                    for node, mgmt in openflow.get("bridges", {}).items()})
    if args.target not in bridges:
        raise TestbedError(f"no OVS bridge for {args.target!r} in cluster {state.name} (racks "
                           "with underlay ovs, nodes in the openflow mode: "
                           f"{', '.join(bridges) or 'none here'})")
    which, mgmt, control_socket = bridges[args.target]
    print(netns.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", mgmt]).rstrip())
    from testbed.underlay.controller import read_stats
    try:
        stats = read_stats(control_socket)
        print(f"# {which} controller: {stats['packet_in']} packet-ins in all since it started")
    except OSError:
        print(f"# {which} controller: not answering (dead?); the flows above keep forwarding")
    return 0


def cmd_get(args):
    """kubectl get: one namespace (-n, default `default`) or all (-A); a table, or the
    objects as kubectl's JSON or YAML."""
    from testbed.api import objects as ko
    from testbed.api.tables import rows
    state = find_run(args.name)
    kind = ko.ALIASES.get(args.what.lower())
    if kind is None:
        raise TestbedError(f'the server doesn\'t have a resource type "{args.what}" (known: '
                           f"{', '.join(ko.RESOURCES)})")
    lister, namespaced = ko.RESOURCES[kind]
    namespace = None if args.all_namespaces or not namespaced else args.namespace
    items = lister(state.data, namespace)
    if args.object:
        items = [o for o in items if o["metadata"]["name"] == args.object]
        if not items:
            where = f" in namespace {namespace}" if namespace else ""
            raise TestbedError(f'{kind} "{args.object}" not found{where}')
    if args.output in ("json", "yaml"):
        doc = items[0] if args.object else ko.listing(items)
        if args.output == "json":
            print(json.dumps(doc, indent=4))
        else:
            import yaml
            print(yaml.safe_dump(doc, sort_keys=True, default_flow_style=False).rstrip())
        return 0
    if not items:
        where = f" in {namespace} namespace" if namespace else ""
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    print(render_table(rows(kind, items, state.data, args.all_namespaces and namespaced,
                            args.output == "wide")))
    enforcement = state.data.get("network_policy", {})
    if kind == "networkpolicies" and not enforcement.get("enforced"):
        print(f"# not enforced in this cluster: {enforcement.get('note', 'no CNI mode')}")
    return 0


def cmd_policy(args):
    """Explain whether NetworkPolicy lets a new connection through, and why."""
    from testbed.policy.semantics import explain
    state = find_run(args.name)
    data = state.data
    src = _address(data, args.source, args.namespace)
    dst = _address(data, args.destination, args.namespace)
    allowed, lines = explain(data, src, dst, args.port, args.protocol.upper())
    print(f"{args.source} ({src}) -> {args.destination} ({dst}) {args.protocol.upper()} "
          f"{args.port}")
    print("\n".join(f"  {line}" for line in lines))
    enforcement = data.get("network_policy", {})
    verdict = "ALLOWED" if allowed else "DENIED"
    if not enforcement.get("enforced"):
        verdict += f" by the policies, but nothing enforces them here: {enforcement.get('note')}"
    print(verdict)
    return 0 if allowed else 1


def _address(data, target, namespace="default"):
    """A pod's (in `namespace`, or NAMESPACE/POD), node's or host's address by name, or an
    address as given."""
    try:
        return find_pod(data, target, namespace)[1]["ip"]
    except TestbedError:
        pass
    for table in (data["nodes"], data.get("hosts", {})):
        if target in table:
            return table[target]["ip"]
    try:
        return str(ipaddress.IPv4Address(target))
    except ValueError:
        raise TestbedError(f"{target!r} is no pod of namespace {namespace}, node or IPv4 "
                           "address of this cluster")


def cmd_daemons(args):
    """The mode's daemons (the udp forwarders) of a running cluster; restart a dead one."""
    from testbed.core.supervisor import request
    state = find_run(args.name)
    owner = state.data.get("supervisor") or {}
    owner_alive = pid_is(owner.get("pid"), owner.get("start"))
    try:
        if args.restart:
            reply = request(state, "restart", node=args.restart)
        else:
            reply = request(state, "daemons")
    except OSError:
        if owner_alive or args.restart:
            raise TestbedError(f"cluster {state.name} has no supervisor to ask (it runs with "
                               "the interactive CLI, or its owner died: `testbed down --name "
                               f"{state.name}` removes it)")
        reply = {"ok": True, "daemons": _daemons_from_records(state)}
    if not reply.get("ok"):
        raise TestbedError(reply.get("error", "request failed"))
    daemons = reply["daemons"]
    if not daemons:
        print(f"mode {state.data['mode']} runs no daemons")
        return 0
    rows = [("DAEMON", "NODE", "PID", "STATE")]
    rows += [(label, d["node"], d["pid"], d["state"]) for label, d in sorted(daemons.items())]
    print(render_table(rows))
    return 0 if all(d["alive"] for d in daemons.values()) else 1


def _daemons_from_records(state):
    """The daemons' state read from the run's records, for a cluster whose owner died: each is
    alive while its recorded PID and start time still match."""
    started = {e["pid"]: e["start"] for e in state.owned("pids")}
    out = {}
    for label, d in (state.data.get("daemons") or {}).items():
        alive = pid_is(d.get("pid"), started.get(d.get("pid")))
        out[label] = {**d, "alive": alive, "state": "running (owner died)" if alive else
                      "gone"}
    return out


def _orphan_status(data):
    """What a run whose owner died still has: its datapath keeps forwarding until removed."""
    pinned = set(netns.netns_list()) & set(data.get("owned", {}).get("netns", []))
    if not pinned:
        return "owner died, nothing left running (testbed clean)"
    return (f"owner died; datapath still up ({len(pinned)} namespaces): testbed down --name "
            f"{data['name']}")


def cmd_status(_args):
    runs = list_runs()
    if not runs:
        print("no cluster is running")
        return 0
    rows = [("NAME", "MODE", "STATUS", "OWNER PID", "TOPOLOGY")]
    for run_dir in runs:
        try:
            data = RunState.load(run_dir).data
        except (OSError, ValueError):
            rows.append((os.path.basename(run_dir), "-", "unreadable (testbed clean)", "-", "-"))
            continue
        owner = data.get("supervisor") or {}
        alive = pid_is(owner.get("pid"), owner.get("start"))
        status = data["status"] if alive else _orphan_status(data)
        dead = [f"{label} {d['state']}" for label, d in (data.get("daemons") or {}).items()
                if not d["alive"]]
        if alive and dead:
            status += "; DEAD: " + ", ".join(dead)
        rows.append((data["name"], data.get("mode"), status, owner.get("pid", "-"),
                     data.get("topology")))
    print(render_table(rows))
    return 0


# --- machine ----------------------------------------------------------------------------
def cmd_doctor(_args):
    checks = doctor.run_checks()
    print(doctor.render(checks))
    caps = doctor.capabilities(checks)
    print("Modes")
    for name in mode_names():
        missing = doctor.missing_for(get_mode(name).requires, caps)
        verdict = "available" if not missing else f"unavailable: missing {', '.join(missing)}"
        print(f"  {name:<10} {verdict}")
    return 1 if any(c.essential and not c.ok for c in checks) else 0


def cmd_clean(args):
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


# --- benchmark --------------------------------------------------------------------------
def _csv(text):
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def cmd_bench(args):
    from bench import harness, report
    from bench.plot import plot_run
    opt = harness.Options(
        topo=args.topo, modes=_csv(args.modes), paths=_csv(args.paths), tests=_csv(args.tests),
        repeats=args.repeats, slices=args.slices, slice_ms=args.slice_ms,
        duration=args.duration,
        streams=args.streams, udp_rate=args.udp_rate, mtu=args.mtu,
        bandwidth=args.bandwidth, delay=args.delay, out=args.out, warmup=not args.no_warmup,
        label=args.label or "", underlay=args.underlay)
    run_dir, summary, skipped = harness.run(opt)
    for mode, reason in skipped.items():
        print(f"mode {mode} left out: {reason}")
    modes = [m for m in ["bare"] + (opt.modes or mode_names()) if m not in skipped]
    print(report.summary_table(summary, list(dict.fromkeys(modes))))
    print(report.comparison_tables(summary))
    print(report.steal_line(summary))
    print(report.retry_line(json.load(open(os.path.join(run_dir, "samples.json")))))
    if not args.no_plot:
        plot_run(str(run_dir))
    print(f"results: {run_dir}")
    return 130 if summary["status"] == "interrupted" else 0


def cmd_plot(args):
    from bench import harness
    from bench.plot import plot_compare, plot_run
    runs = args.runs or [str(harness.newest_run(args.out))]
    for run in runs:
        if not os.path.isfile(os.path.join(run, "summary.json")):
            raise TestbedError(f"{run}: not a benchmark run directory (no summary.json)")
    if len(runs) == 1:
        files = plot_run(runs[0])
    elif len(runs) == 2:
        out = os.path.join(os.path.dirname(os.path.normpath(runs[1])), "compare-" +
                           "-vs-".join(os.path.basename(os.path.normpath(r)) for r in runs))
        files = plot_compare(runs[0], runs[1], out)
    else:
        raise TestbedError("plot takes one run directory, or two to compare")
    for f in files:
        print(f)
    return 0


def _namespace_option(parser):
    parser.add_argument("-n", "--namespace", default="default",
                        help="the pods' Kubernetes namespace (default: default)")


def _ranged(kind, low, high):
    """An argparse type: a number of `kind` from low to high, else a one-line usage error."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({low} to {high})")
        return value
    parse.__name__ = kind.__name__  # what argparse names in its own messages
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="testbed", description="An emulated Kubernetes pod network on one machine.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="bring a cluster up (interactive CLI unless --no-cli)")
    up.add_argument("--topo", default=str(DEFAULT_TOPOLOGY), help="topology YAML file")
    up.add_argument("--mode", help=f"CNI mode (default: the topology's, else {DEFAULT_MODE})")
    up.add_argument("--name", help="cluster name (default: the topology's)")
    up.add_argument("--underlay", choices=["linux", "ovs"],
                    help="what switches the racks (default: the topology's, else linux)")
    up.add_argument("--proxy-mode", choices=PROXY_MODES,
                    help="kube-proxy's mode (default: the topology's kubeProxy.mode, else "
                    "iptables)")
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

    ex = sub.add_parser("exec", help="run a command in a pod or node: exec [-n NS] NAME -- CMD")
    ex.add_argument("--name", help="cluster name, if several run")
    _namespace_option(ex)
    ex.add_argument("target", help="pod (NAME or NAMESPACE/NAME) or node name")
    ex.add_argument("argv", nargs="*", metavar="COMMAND", help="after --, as kubectl exec "
                    "takes it")
    ex.set_defaults(func=cmd_exec)

    get = sub.add_parser("get", help="list objects as kubectl does: pods, nodes, svc, "
                         "endpoints, netpol, namespaces")
    get.add_argument("what", metavar="RESOURCE",
                     help="pods, nodes, services (svc), endpoints (ep), networkpolicies "
                     "(netpol) or namespaces (ns)")
    get.add_argument("object", nargs="?", metavar="NAME", help="just this object")
    get.add_argument("--name", help="cluster name, if several run")
    _namespace_option(get)
    get.add_argument("-A", "--all-namespaces", action="store_true",
                     help="every namespace (adds a NAMESPACE column)")
    get.add_argument("-o", "--output", choices=["table", "wide", "json", "yaml"],
                     default="table")
    get.set_defaults(func=cmd_get)

    logs = sub.add_parser("logs", help="a container's output: logs [-n NS] POD [-c NAME]")
    logs.add_argument("pod")
    logs.add_argument("-c", "--container")
    _namespace_option(logs)
    logs.add_argument("--name", help="cluster name, if several run")
    logs.set_defaults(func=cmd_logs)

    desc = sub.add_parser("describe", help="an object in words: describe pod|svc|netpol NAME")
    desc.add_argument("kind", metavar="RESOURCE", help="pod, service (svc) or "
                      "networkpolicy (netpol)")
    desc.add_argument("object", metavar="NAME")
    _namespace_option(desc)
    desc.add_argument("--name", help="cluster name, if several run")
    desc.set_defaults(func=cmd_describe)

    bench = sub.add_parser("bench", help="measure every mode side by side, write results/")
    bench.add_argument("--topo", default=str(DEFAULT_TOPOLOGY))
    bench.add_argument("--modes", help="comma list (default: every mode this machine supports)")
    bench.add_argument("--paths", help="comma list of pod-same-node, pod-cross-node, "
                       "pod-cross-rack, node-node, node-cross-rack (default: all)")
    bench.add_argument("--tests", help="comma list of tcp-1, tcp-n, udp, tcp-rr, udp-rr, icmp, "
                       "or all (default: all but udp-rr)")
    bench.add_argument("--repeats", type=_ranged(int, 1, 1000), default=3,
                       help="cycles of whole UDP throughput runs, each mode's run "
                       "between two of the bare underlay")
    bench.add_argument("--slices", type=_ranged(int, 2, 100000), default=60,
                       help="cycles of time-sliced turns (every test but udp; tcp-n a third)")
    bench.add_argument("--slice-ms", type=_ranged(int, 10, 60000), default=100,
                       help="one time-sliced turn")
    bench.add_argument("--duration", type=_ranged(int, 1, 3600), default=1,
                       help="seconds per UDP sample")
    bench.add_argument("--streams", type=_ranged(int, 1, 128), default=4,
                       help="parallel streams of tcp-n")
    bench.add_argument("--udp-rate", default="1G", help="offered UDP rate (iperf3 -b)")
    bench.add_argument("--mtu", type=_ranged(int, 1280, 9000), help="underlay MTU")
    bench.add_argument("--bandwidth", type=_ranged(float, 0.001, 1e6),
                       help="Mbit/s cap on every underlay link")
    bench.add_argument("--delay", type=_ranged(float, 0.0, 60000.0),
                       help="ms of delay per link end (needs netem)")
    bench.add_argument("--underlay", choices=["linux", "ovs"],
                       help="what switches the racks (default: the topology's, else linux)")
    bench.add_argument("--out", default="results", help="where run directories go")
    bench.add_argument("--label", help="appended to the run directory's name")
    bench.add_argument("--no-warmup", action="store_true")
    bench.add_argument("--no-plot", action="store_true")
    bench.set_defaults(func=cmd_bench)

    plot = sub.add_parser("plot", help="plot a run (or compare two): PNG and SVG")
    plot.add_argument("runs", nargs="*", help="run directories (default: the newest)")
    plot.add_argument("--out", default="results", help="where to look for the newest run")
    plot.set_defaults(func=cmd_plot)

    daemons = sub.add_parser("daemons", help="the mode's daemons (udp forwarders): state, "
                             "restart")
    daemons.add_argument("--name")
    daemons.add_argument("--restart", metavar="NODE", help="restart the daemon of NODE")
    daemons.set_defaults(func=cmd_daemons)

    for verb, what in (("apply", "create what Kubernetes manifests describe"),
                       ("delete", "remove what Kubernetes manifests describe")):
        p = sub.add_parser(verb, help=f"{what} (Namespace, Pod, Deployment, Service)")
        p.add_argument("-f", "--filename", required=True, help="a YAML file or a directory")
        p.add_argument("--name", help="cluster name, if several run")
        p.set_defaults(func=cmd_apply)

    pol = sub.add_parser("policy", help="explain NetworkPolicy: policy check SRC DST PORT")
    pol_sub = pol.add_subparsers(dest="action", required=True)
    check = pol_sub.add_parser("check", help="would a new connection SRC -> DST:PORT pass?")
    check.add_argument("source", help="pod, node or IPv4 address")
    check.add_argument("destination", help="pod, node or IPv4 address")
    check.add_argument("port", type=_ranged(int, 1, 65535))
    check.add_argument("--protocol", choices=["tcp", "udp", "sctp", "TCP", "UDP", "SCTP"],
                       default="tcp")
    _namespace_option(check)
    check.add_argument("--name")
    check.set_defaults(func=cmd_policy)

    flows = sub.add_parser("flows", help="the OpenFlow flows of an OVS bridge")
    flows.add_argument("target", help="a rack (underlay: ovs) or a node (openflow mode)")
    flows.add_argument("--name")
    flows.set_defaults(func=cmd_flows)

    routes = sub.add_parser("routes", help="a node's routes (and BGP sessions in bgp mode)")
    routes.add_argument("node")
    routes.add_argument("--name")
    routes.set_defaults(func=cmd_routes)

    sub.add_parser("status", help="list running clusters").set_defaults(func=cmd_status)
    sub.add_parser("doctor", help="what this machine offers").set_defaults(func=cmd_doctor)
    clean = sub.add_parser("clean", help="remove what runs whose owner died left behind "
                           "(live clusters are left alone)")
    which = clean.add_mutually_exclusive_group()
    which.add_argument("--name", help="this cluster only, even if it is live")
    which.add_argument("--all", action="store_true",
                       help="every cluster on the machine, live ones included")
    clean.set_defaults(
        func=cmd_clean)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    after = None
    if argv[:1] == ["exec"] and "--" in argv:  # the command, after --, is not ours to parse
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if after is not None:
        args.argv = after
    if os.geteuid() != 0 and args.command not in ("status", "plot"):
        print("testbed: run as root (network namespaces need it)", file=sys.stderr)
        return 1
    try:
        return args.func(args)
    except TestbedError as e:
        print(f"testbed: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("testbed: interrupted; everything it built was torn down", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
