"""The process that owns a running cluster (`testbed up --no-cli`).

Mininet's node shells live as long as the process that made them, so a cluster that outlives
the `up` command needs an owner. The supervisor builds the cluster, reports "ready" (or the
error) to the `up` command on its stdout, then serves a control socket in the run directory
until asked to go `down` or sent SIGTERM; either way it tears the cluster down.
"""
import argparse
import json
import os
import select
import socket
import sys
import traceback

from testbed import manifests
from testbed.api import apply
from testbed.controllers import Controllers, applier
from testbed.errors import TestbedError
from testbed.host import rpc
from testbed.host.daemons import describe_death
from testbed.host.processes import Process, process_start_time
from testbed.host.signals import Interrupted, signals_interrupt
from testbed.lifecycle.adopt import adopt
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.control import PROGRESS, READY
from testbed.lifecycle.preflight import load_spec
from testbed.model.records import encode

SLOW_PASS_S = 2.0  # a controllers' pass longer than this is logged with its parts
DAEMON_CHECK_S = 0.5  # how often the supervisor looks for dead daemons


def apply_request(cluster: Cluster, op: str, path: str,
                  controllers: Controllers | None = None) -> dict:
    """`testbed apply -f` / `delete -f`, carried out by the cluster's owner: through the API
    server where the cluster has one (controllers/applier.py), else on the cluster."""
    try:
        if controllers is not None:
            return applier.apply(controllers, cluster, path, op)
        loaded = manifests.load(path)
        result = (apply.apply if op == "apply" else apply.delete)(cluster, loaded)
        return {"ok": True, **result.as_dict()}
    except TestbedError as e:
        return {"ok": False, "error": str(e)}
    except Exception as e:  # a bug must not take the running cluster down with it
        traceback.print_exc()
        return {"ok": False, "error": f"{type(e).__name__}: {e} (see the supervisor log)"}


def _report_deaths(cluster, reported):
    """Log each daemon death once; check_daemons() records it in the state for `status`."""
    for label, info in cluster.check_daemons().items():
        if not info.alive and label not in reported:
            reported.add(label)
            print(describe_death(label, info, "testbed daemons --restart"), file=sys.stderr,
                  flush=True)


def _revive_control_plane(cluster):
    """An API server or etcd that died is started again at once, on its port and data: the
    cluster's objects are in etcd's files, so nothing is lost (kubelet's static pods are
    restarted the same way)."""
    plane = cluster.control_plane
    if plane is None:
        return
    try:
        restarted = plane.revive(cluster.state)
    except TestbedError as e:
        print(f"control plane: {e}", file=sys.stderr, flush=True)
        return
    for label in restarted:
        cluster.state.event("Warning", "Restarted", f"daemon/{label}",
                            f"{label} had died; started again on its port and data")
        print(f"{label} had died; started again", file=sys.stderr, flush=True)


class Following:
    """The controllers of a cluster with an API server, run between requests; a failure is
    logged once (until it changes) and never takes the owner down."""

    def __init__(self, cluster: Cluster):
        self.controllers = Controllers(cluster) if cluster.control_plane else None
        self.last_error: str | None = None

    @property
    def wake_fd(self) -> list[int]:
        """What to wait on besides the control socket: a byte when the API changed."""
        return [self.controllers.wake.read_fd] if self.controllers else []

    def sync(self, cluster: Cluster) -> None:
        if self.controllers is None:
            return
        self.controllers.wake.settle()  # what changed until now is seen by this pass
        try:
            took = self.controllers.sync(cluster)
            self.last_error = None
            if sum(took.values()) > SLOW_PASS_S:  # where a slow pass went, for its log
                print(f"controllers: a pass of {sum(took.values()):.1f} s: " + ", ".join(
                    f"{name} {seconds:.1f} s" for name, seconds in took.items()
                    if seconds >= 0.1), flush=True)
        except TestbedError as e:
            if str(e) != self.last_error:
                print(f"controllers: {e}", file=sys.stderr, flush=True)
            self.last_error = str(e)
        except Exception as e:  # a bug must not take the running cluster down with it
            if repr(e) != self.last_error:
                traceback.print_exc()
            self.last_error = repr(e)


def serve(cluster: Cluster, following: "Following") -> None:
    """Answer requests until one asks for `down`."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(cluster.state.control_socket):  # a dead owner's (adopt.py)
        os.unlink(cluster.state.control_socket)
    server.bind(cluster.state.control_socket)
    server.listen(8)
    server.settimeout(DAEMON_CHECK_S)
    reported = set()
    try:
        while True:
            _revive_control_plane(cluster)
            _report_deaths(cluster, reported)  # first: it records the daemons for `status`
            following.sync(cluster)
            ready, _, _ = select.select([server, *following.wake_fd], [], [], DAEMON_CHECK_S)
            if server not in ready:
                continue  # the tick, or the API changed: the controllers' turn
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            with conn:
                line = conn.makefile().readline()
                try:
                    request = json.loads(line)
                    op = request.get("op")
                except (ValueError, AttributeError):
                    request, op = {}, None
                if op == "down":
                    def progress(text, conn=conn):
                        rpc.send_line(conn, {"progress": text})
                    left = cluster.down(progress=progress)
                    rpc.send_line(conn, {"ok": not left, "left": left, "timings": cluster.timings})
                    return
                if op == "status":
                    reply = {"ok": True, "status": cluster.state.status}
                elif op == "daemons":
                    reply = {"ok": True, "daemons": encode(cluster.check_daemons())}
                elif op in ("apply", "delete"):
                    reply = apply_request(cluster, op, request.get("path"),
                                          following.controllers)
                elif op == "restart":
                    try:
                        restarted = cluster.restart_daemon(request.get("node"))
                        reply = {"ok": True, "daemons": encode(restarted)}
                        reported = {label for label in reported
                                    if not label.endswith(f"@{request.get('node')}")}
                    except TestbedError as e:
                        reply = {"ok": False, "error": str(e)}
                else:
                    reply = {"ok": False, "error": f"unknown request {op!r}"}
                conn.sendall(json.dumps(reply).encode() + b"\n")
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testbed-supervisor")
    parser.add_argument("--topo")
    parser.add_argument("--mode")
    parser.add_argument("--name")
    parser.add_argument("--adopt", action="store_true",
                        help="own the running cluster --name, whose owner died (adopt.py)")
    parser.add_argument("--underlay")
    parser.add_argument("--proxy-mode")
    parser.add_argument("--ip-family")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    report = os.fdopen(os.dup(1), "w")  # to the waiting `up`; fds 1 and 2 go to the log
    cluster = None
    with signals_interrupt():
        try:
            me = Process(os.getpid(), process_start_time(os.getpid()), "supervisor")
            if args.adopt:
                cluster = adopt(args.name, me, args.verbose)
                _log_to(cluster)
            else:
                spec = load_spec(args.topo, args.name, args.underlay, args.proxy_mode,
                                 args.ip_family)
                cluster = Cluster.create(spec, args.mode, verbose=args.verbose,
                                         control_plane=True, supervisor=me)
                _log_to(cluster)
                cluster.up(progress=lambda text: _report_progress(report, text))
            # the first pass before "ready": kubectl then finds every Node registered and
            # every pod of the cluster in the API, as on kind once its nodes have joined
            following = Following(cluster)
            following.sync(cluster)
            report.write(READY + "\n")
            report.close()
            serve(cluster, following)
        except (TestbedError, Interrupted) as e:
            _report_failure(report, str(e) or type(e).__name__)
            if cluster is not None:
                _down_quietly(cluster)
            return 1
        except BaseException:
            _report_failure(report, traceback.format_exc())
            if cluster is not None:
                _down_quietly(cluster)
            raise
        finally:
            if cluster is not None:
                cluster.remove_run_dir()
    return 0


def _log_to(cluster):
    """From now on this process writes to the run's supervisor.log."""
    log = os.open(os.path.join(cluster.state.dir, "supervisor.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def _report_progress(report, text):
    """News of the bring-up for the waiting `up`, which shows it as a progress line."""
    report.write(f"{PROGRESS}{text}\n")
    report.flush()


def _report_failure(report, message):
    if not report.closed:
        report.write(f"error: {message}\n")
        report.close()


def _down_quietly(cluster):
    for problem in cluster.down():
        print(f"teardown: {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
