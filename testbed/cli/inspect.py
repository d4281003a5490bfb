"""Verbs that look inside a running cluster: exec, routes, flows, bpf, daemons, policy check."""
import argparse
import subprocess

from testbed.api.tables import find_pod, render_table
from testbed.cli.common import (
    address,
    find_run,
    hosts,
    mode_of,
    namespace_option,
    ranged,
)
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.daemons import DaemonRecord
from testbed.host.processes import pid_is
from testbed.kubelet.exec import exec_argv
from testbed.lifecycle.control import request
from testbed.model.records import decode
from testbed.policy.semantics import explain
from testbed.underlay.controller import read_stats
from testbed.underlay.names import in_host


def cmd_exec(args: argparse.Namespace) -> int | None:
    """A command in a pod (of -n's namespace, or NAMESPACE/POD) or in a node or host."""
    state = find_run(args.name)
    command = args.argv
    if not command:
        raise TestbedError("give a command after --, e.g. testbed exec node1-pod1 -- ip addr")
    named = hosts(state)
    try:
        _key, pod = find_pod(state, args.target, args.namespace)
    except TestbedError:
        if args.target not in named:
            raise TestbedError(f"no pod {args.target!r} in namespace {args.namespace} and no "
                               f"node or host of that name in cluster {state.name} (nodes and "
                               f"hosts: {', '.join(named)}; `testbed get pods -A` lists pods)")
        return subprocess.call(in_host(state, args.target, named[args.target], command))
    return subprocess.call(exec_argv(pod, command))


def cmd_routes(args: argparse.Namespace) -> int | None:
    """A node's routes, and what its routing daemon says of its sessions (bgp: BIRD)."""
    state = find_run(args.name)
    record = state.nodes.get(args.node) or state.routers.get(args.node)
    if record is None:
        raise TestbedError(f"no node {args.node!r} in cluster {state.name} "
                           f"(nodes: {', '.join(state.nodes)})")
    print(f"# ip route ({args.node})")
    print(netns.run(in_host(state, args.node, record, ["ip", "route"])).rstrip())
    if state.ip_family != "ipv4":  # the IPv6 table too, in a cluster with IPv6
        print(f"\n# ip -6 route ({args.node})")
        print(netns.run(in_host(state, args.node, record, ["ip", "-6", "route"])).rstrip())
    mode = mode_of(state)
    sessions = mode.routing_sessions(state, args.node) if mode else None
    if sessions:
        print(f"\n# {mode.routing_daemon}")
        print(sessions.rstrip())
    return 0


def cmd_flows(args: argparse.Namespace) -> int | None:
    """A bridge's flows (ovs-ofctl dump-flows) and how often its controller was asked: a
    rack's (underlay: ovs) or a node's br-int (openflow mode)."""
    state = find_run(args.name)
    fabric = state.fabric
    bridges = {rack: ("fabric", facts["mgmt"], fabric["control_socket"])
               for rack, facts in fabric.get("racks", {}).items()}
    mode = mode_of(state)
    if mode is not None:
        bridges.update({node: (state.mode, mgmt, control) for node, (mgmt, control)
                        in mode.flow_bridges(state).items()})
    if args.target not in bridges:
        raise TestbedError(f"no OVS bridge for {args.target!r} in cluster {state.name} (racks "
                           "with underlay ovs, nodes in the openflow mode: "
                           f"{', '.join(bridges) or 'none here'})")
    which, mgmt, control_socket = bridges[args.target]
    print(netns.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", mgmt]).rstrip())
    try:
        stats = read_stats(control_socket)
        print(f"# {which} controller: {stats['packet_in']} packet-ins in all since it started")
    except OSError:
        print(f"# {which} controller: not answering (dead?); the flows above keep forwarding")
    return 0


def cmd_bpf(args: argparse.Namespace) -> int | None:
    """A node's eBPF datapath: programs, endpoint, ipcache and service maps, counters."""
    state = find_run(args.name)
    if args.node not in state.nodes:
        raise TestbedError(f"no node {args.node!r} in cluster {state.name} "
                           f"(nodes: {', '.join(state.nodes)})")
    mode = mode_of(state)
    tables = mode.datapath_tables(state, args.node) if mode else None
    if tables is None:
        raise TestbedError(f"cluster {state.name} runs mode {state.mode}, which has no BPF "
                           "datapath (the ebpf mode has)")
    print(tables)
    return 0


def cmd_daemons(args: argparse.Namespace) -> int | None:
    """The daemons of a running cluster (the mode's and the fabric's); restart a dead one."""
    state = find_run(args.name)
    owner = state.supervisor
    owner_alive = owner is not None and pid_is(owner.pid, owner.start)
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
        daemons = _daemons_from_records(state)
    else:
        if not reply.get("ok"):
            raise TestbedError(reply.get("error", "request failed"))
        daemons = decode(dict[str, DaemonRecord], reply["daemons"])
    if not daemons:
        print(f"mode {state.mode} runs no daemons")
        return 0
    rows = [("DAEMON", "NODE", "PID", "STATE")]
    rows += [(label, d.node, d.pid, d.state) for label, d in sorted(daemons.items())]
    print(render_table(rows))
    return 0 if all(d.alive for d in daemons.values()) else 1


def _daemons_from_records(state):
    """The daemons' state read from the run's records, for a cluster whose owner died: each is
    alive while its recorded PID and start time still match."""
    started = {e.pid: e.start for e in state.owned.pids}
    out = {}
    for label, d in state.daemons.items():
        alive = pid_is(d.pid, started.get(d.pid))
        out[label] = DaemonRecord(d.node, d.pid, alive,
                                  "running (owner died)" if alive else "gone")
    return out


def cmd_policy(args: argparse.Namespace) -> int | None:
    """Explain whether NetworkPolicy lets a new connection through, and why."""
    state = find_run(args.name)
    src = address(state, args.source, args.namespace)
    dst = address(state, args.destination, args.namespace)
    allowed, lines = explain(state, src, dst, args.port, args.protocol.upper())
    print(f"{args.source} ({src}) -> {args.destination} ({dst}) {args.protocol.upper()} "
          f"{args.port}")
    print("\n".join(f"  {line}" for line in lines))
    enforcement = state.network_policy
    verdict = "ALLOWED" if allowed else "DENIED"
    if not enforcement.enforced:
        verdict += f" by the policies, but nothing enforces them here: {enforcement.note}"
    print(verdict)
    return 0 if allowed else 1


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """exec, routes, flows, bpf, daemons, policy check"""
    ex = sub.add_parser("exec", help="run a command in a pod or node: exec [-n NS] NAME -- CMD")
    ex.add_argument("--name", help="cluster name, if several run")
    namespace_option(ex)
    ex.add_argument("target", help="pod (NAME or NAMESPACE/NAME) or node name")
    ex.add_argument("argv", nargs="*", metavar="COMMAND", help="after --, as kubectl exec "
                    "takes it")
    ex.set_defaults(func=cmd_exec)

    routes = sub.add_parser("routes", help="a node's routes (and BGP sessions in bgp mode)")
    routes.add_argument("node")
    routes.add_argument("--name")
    routes.set_defaults(func=cmd_routes)

    flows = sub.add_parser("flows", help="the OpenFlow flows of an OVS bridge")
    flows.add_argument("target", help="a rack (underlay: ovs) or a node (openflow mode)")
    flows.add_argument("--name")
    flows.set_defaults(func=cmd_flows)

    bpf = sub.add_parser("bpf", help="a node's eBPF datapath (ebpf mode): programs, maps, "
                         "counters")
    bpf.add_argument("node")
    bpf.add_argument("--name")
    bpf.set_defaults(func=cmd_bpf)

    daemons = sub.add_parser("daemons", help="the daemons of the mode and the fabric: state, "
                             "restart")
    daemons.add_argument("--name")
    daemons.add_argument("--restart", metavar="NODE", help="restart the daemon of NODE")
    daemons.set_defaults(func=cmd_daemons)

    pol = sub.add_parser("policy", help="explain NetworkPolicy: policy check SRC DST PORT")
    pol_sub = pol.add_subparsers(dest="action", required=True)
    check = pol_sub.add_parser("check", help="would a new connection SRC -> DST:PORT pass?")
    check.add_argument("source", help="pod, node or IPv4 address")
    check.add_argument("destination", help="pod, node or IPv4 address")
    check.add_argument("port", type=ranged(int, 1, 65535))
    check.add_argument("--protocol", choices=["tcp", "udp", "sctp", "TCP", "UDP", "SCTP"],
                       default="tcp")
    namespace_option(check)
    check.add_argument("--name")
    check.set_defaults(func=cmd_policy)
