"""The interactive CLI of `testbed up`: Mininet's CLI, taught about pods.

`POD CMD` runs CMD in the pod's sandbox, `NODE CMD` in the node; in either, pod and node names
after the first word become their IP addresses, so `node1-pod1 ping node2-pod2` works.
"""
import subprocess

from mininet.cli import CLI

from . import netns
from .inventory import node_rows, pod_rows, render_table


class TestbedCLI(CLI):
    prompt = "testbed> "
    identchars = CLI.identchars + "-."  # pod and node names hold '-' (node1-pod1)

    def __init__(self, cluster, **kwargs):
        self.cluster = cluster
        super().__init__(cluster.underlay.net, **kwargs)

    def _addresses(self):
        data = self.cluster.state.data
        names = {name: rec["ip"] for name, rec in data["pods"].items()}
        names.update({name: rec["ip"] for name, rec in data["nodes"].items()})
        return names

    def _substitute(self, words):
        addresses = self._addresses()
        return [addresses.get(word, word) for word in words]

    def default(self, line):
        """Run a shell line in a pod or node; it may use pipes, as Mininet's node commands do."""
        first, args, line = self.parseline(line)
        pods = self.cluster.state.data["pods"]
        if first not in pods and first not in self.mn:
            print(f"*** unknown command or name: {first} (try `help`, `pods`, `nodes`)")
            return
        if not args:
            print(f"*** give a command to run in {first}: {first} <cmd>")
            return
        shell_line = " ".join(self._substitute(args.split(" ")))
        if first in pods:
            argv = netns.in_pod(pods[first]["netns"], ["sh", "-c", shell_line])
        else:
            argv = netns.in_node(self.mn[first].pid, ["sh", "-c", shell_line])
        subprocess.call(argv, stdin=subprocess.DEVNULL)

    def do_pods(self, _line):
        """List pods: name, namespace, node, IP."""
        print(render_table(pod_rows(self.cluster.state.data)))

    def do_nodes(self, _line):
        """List nodes: name, rack, underlay IP, pod subnet."""
        print(render_table(node_rows(self.cluster.state.data)))
