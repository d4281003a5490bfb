"""The interactive CLI of `testbed up`: Mininet's CLI, taught about pods.

`POD CMD` runs CMD in the pod's sandbox, `NODE CMD` in the node; in either, pod and node names
after the first word become their IP addresses, so `node1-pod1 ping node2-pod2` works. A pod
is named as in `testbed exec`: NAME for one of the default namespace, NAMESPACE/NAME for any.

The cluster follows its API server here too: the controllers run in the background, held off
while a command reads or changes the cluster (`pods`, `apply`, ...; not while `sh` or a pod's
command runs, which may wait for them), so kubectl — from another terminal or from `sh` —
drives this cluster as it drives one `testbed up --no-cli` started.
"""
import functools
import os
import select
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from mininet.cli import CLI

from testbed.api import objects as ko
from testbed.api.apply import report
from testbed.api.tables import find_pod, render_table, rows
from testbed.cli.objects import listed
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.daemons import describe_death
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.supervisor import DAEMON_CHECK_S, Following, apply_request


class Follower(threading.Thread):
    """The cluster's controllers, run in the background: a pass when the API changed or at
    the supervisor's tick, never while a console command runs (both hold `lock`)."""

    def __init__(self, cluster: Cluster, lock: threading.RLock):
        super().__init__(name="controllers", daemon=True)
        self.cluster, self.lock = cluster, lock
        self.following = Following(cluster)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                if self.stopping.is_set():
                    return
                self.following.sync(self.cluster)
            select.select(self.following.wake_fd, [], [], DAEMON_CHECK_S)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def holding_the_cluster(method: Callable[..., Any]) -> Callable[..., Any]:
    """A command that reads or changes the cluster: the controllers wait until it is done."""
    @functools.wraps(method)
    def held(self: "TestbedCLI", *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)
    return held


class TestbedCLI(CLI):
    prompt = "testbed> "
    identchars = CLI.identchars + "-./"  # node1-pod1, shop/web-1

    def __init__(self, cluster: Cluster, **kwargs: Any):
        self.cluster = cluster
        self.reported: set[str] = set()
        self.lock = threading.RLock()
        self.follower = Follower(cluster, self.lock)
        self.follower.following.sync(cluster)  # the first pass, before the first prompt
        self.follower.start()
        try:
            super().__init__(cluster.underlay.net, **kwargs)  # Mininet's CLI runs here
        finally:
            self.follower.stop()

    def _addresses(self):
        state = self.cluster.state
        names = {key: rec.ip for key, rec in state.pods.items()}
        names.update({rec.name: rec.ip for rec in state.pods.values()
                      if rec.namespace == "default"})
        names.update({name: rec.ip for name, rec in state.nodes.items()})
        return names

    def _pod(self, word):
        """The pod record a word names (NAME of default's, or NAMESPACE/NAME), else None."""
        try:
            return find_pod(self.cluster.state, word)[1]
        except TestbedError:
            return None

    def default(self, line: str) -> None:
        """Run a shell line in a pod or node; it may use pipes, as Mininet's node commands do."""
        first, args, line = self.parseline(line)
        with self.lock:
            pod, addresses = self._pod(first or ""), self._addresses()
        if pod is None and first not in self.mn:
            print(f"*** unknown command or name: {first} (try `help`, `pods`, `nodes`)")
            return
        if not args:
            print(f"*** give a command to run in {first}: {first} <cmd>")
            return
        shell_line = " ".join(addresses.get(word, word) for word in args.split(" "))
        if pod is not None:
            argv = netns.in_pod(pod.netns, ["sh", "-c", shell_line])
        else:
            argv = netns.in_node(self.mn[first].pid, ["sh", "-c", shell_line])
        subprocess.call(argv, stdin=subprocess.DEVNULL)

    @holding_the_cluster
    def precmd(self, line: str) -> str:
        """Before each command: say so if a daemon of the mode (a udp forwarder) has died."""
        for label, info in self.cluster.check_daemons().items():
            if not info.alive and label not in self.reported:
                self.reported.add(label)
                print(f"*** {describe_death(label, info, 'daemons restart')}")
        return line

    @holding_the_cluster
    def do_daemons(self, line: str) -> None:
        """List the mode's daemons; `daemons restart NODE` restarts NODE's."""
        words = line.split()
        try:
            if words[:1] == ["restart"] and len(words) == 2:
                self.cluster.restart_daemon(words[1])
                self.reported = {label for label in self.reported
                                 if not label.endswith(f"@{words[1]}")}
            elif words:
                print("*** usage: daemons [restart NODE]")
                return
        except TestbedError as e:
            print(f"*** {e}")
            return
        rows = [("DAEMON", "NODE", "PID", "STATE")]
        rows += [(label, d.node, d.pid, d.state)
                 for label, d in sorted(self.cluster.check_daemons().items())]
        print(render_table(rows) if len(rows) > 1 else "this mode runs no daemons")

    @holding_the_cluster
    def do_routes(self, line: str) -> None:
        """`routes NODE`: the node's routes, and its routing daemon's sessions (bgp mode)."""
        name = line.strip()
        node = self.cluster.nodes.get(name)
        if node is None:
            print(f"*** usage: routes NODE (nodes: {', '.join(self.cluster.nodes)})")
            return
        print(node.ns.run("ip", "route").rstrip())
        sessions = self.cluster.mode.routing_sessions(self.cluster.state, name) \
            if self.cluster.mode else None
        if sessions:
            print(sessions.rstrip())

    @holding_the_cluster
    def do_apply(self, line: str, op: str = "apply") -> None:
        """`apply -f FILE_OR_DIR`: create what Kubernetes manifests describe."""
        words = line.split()
        if len(words) != 2 or words[0] not in ("-f", "--filename"):
            print(f"*** usage: {op} -f FILE_OR_DIR")
            return
        reply = apply_request(self.cluster, op, os.path.abspath(words[1]),
                              self.follower.following.controllers)
        warnings, done = report(reply, op)
        print("\n".join(warnings + (done if reply["ok"] else [f"*** {reply['error']}"])))

    def do_delete(self, line: str) -> None:
        """`delete -f FILE_OR_DIR`: remove what Kubernetes manifests describe."""
        self.do_apply(line, op="delete")

    @holding_the_cluster
    def do_pods(self, _line: str) -> None:
        """List pods of every namespace, with their IP, node and sandbox (as the API server
        has them, as `testbed get pods -A -o wide` lists them)."""
        state = self.cluster.state
        print(render_table(rows("pods", listed(state, "pods", None), state,
                                all_namespaces=True, wide=True)))

    @holding_the_cluster
    def do_nodes(self, _line: str) -> None:
        """List nodes: name, rack, underlay IP, pod subnet."""
        state = self.cluster.state
        print(render_table(rows("nodes", ko.nodes(state), state, wide=True)))
