"""Open vSwitch instances of the testbed's own: ovsdb-server and ovs-vswitchd in one namespace.

Each instance has its database, sockets and logs in a directory of its own in the run
(OVS_RUNDIR, where ovs-vswitchd also puts its bridges' management sockets), so the host's Open
vSwitch (if any) is never touched and everything goes with the run. ovs-vswitchd connects only
to controller sockets inside its OVS_RUNDIR: a link there leads to the run's one controller.
The kernel datapath is used where the openvswitch module exists; elsewhere bridges use the
userspace datapath (datapath_type=netdev), which reads and writes ports through packet sockets.
"""
import os
import re
import subprocess
from collections.abc import Callable, Sequence

from testbed.errors import CommandError
from testbed.host.daemons import Daemon, DaemonRecord, Ledger
from testbed.host.netns import run

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
NFT_TABLE = "testbed-ovs"  # netdev table of the ingress drops below
OPENFLOW = "OpenFlow13"
READY_TIMEOUT_S = 10.0


def datapath_type(caps: dict[str, bool]) -> str:
    """The bridges' datapath_type: the kernel's if it has the module, else userspace."""
    return "system" if caps.get("openvswitch") else "netdev"


def userspace_port_argvs(device: str) -> list[list[str]]:
    """Commands that make a kernel device a port of the userspace datapath alone.

    That datapath reads the device through a packet socket and writes to it from userspace,
    and two things follow. It never completes a checksum the kernel left to the device, so
    the device computes its own (tx checksum offload off; with it on, TCP stalls). And the
    kernel still receives every packet on the device too, and would answer or forward it a
    second time: a drop at the device's netfilter ingress hook, which runs after packet
    sockets have had their copy, leaves the packet to OVS only, as the kernel datapath's
    receive hook does."""
    chain = "{ type filter hook ingress device \"%s\" priority 0; policy drop; }" % device
    return [["ethtool", "-K", device, "tx", "off"],
            ["nft", "add", "table", "netdev", NFT_TABLE],
            ["nft", "add", "chain", "netdev", NFT_TABLE, f"in-{device}", chain]]


def vswitchd_control(run_dir: str, name: str) -> str:
    """The unixctl socket of an instance's ovs-vswitchd (for ovs-appctl -t)."""
    return os.path.join(run_dir, f"{name}.ovs-vswitchd.ctl")


def port_names(mgmt: str) -> dict[str, str]:
    """{OpenFlow port number: port name} of a bridge."""
    out = run(["ovs-ofctl", "-O", "OpenFlow13", "dump-ports-desc", mgmt], timeout=5)
    return dict(re.findall(r"^ (\d+)\(([^)]+)\):", out, re.MULTILINE))


def trace_summary(output: str, ports: dict[str, str] | None = None) -> list[str]:
    """The steps of `ovs-appctl ofproto/trace`: each table a packet matched (and its
    actions), the tunnel it was sent into, and the datapath's final actions; port numbers
    of in_port= and output: named from `ports`."""
    lines, bridge, final = [], "", ""
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith('bridge("'):
            bridge = line.split('"')[1]
        elif line[:1].isdigit() and ". " in line and bridge:
            table, match = line.split(". ", 1)
            lines.append(f"{bridge} table {table}: {match}")
        elif lines and bridge and line and not line.startswith(("->", "thaw", "Resuming",
                                                                 "---", "===")):
            if not line.startswith(("Flow:", "Final flow:", "Megaflow:", "Datapath", "recirc")):
                lines[-1] += ("; " if " -> " in lines[-1] else " -> ") + line
        if line.startswith("-> tunneling to") or line.startswith("-> output to"):
            lines.append(f"  {line[3:]}")
        elif line.startswith("Datapath actions:"):
            final = line
    lines += [final] if final else []
    if ports:
        def named(m):
            return m[1] + ports.get(m[2], m[2])
        lines = [re.sub(r"(in_port=|output:)(\d+)", named, line) for line in lines]
    return lines


def describe_datapath(dp_type: str) -> str:
    return {"system": "kernel datapath", "netdev": "userspace datapath"}[dp_type]


class OvsInstance:
    def __init__(self, name: str, run_dir: str, netns_argv: Callable[[list], list[str]]):
        self.name = name                # e.g. "rack1": names its files and its daemons
        self.dir = run_dir              # the instance's own OVS_RUNDIR
        self.netns_argv = netns_argv    # f(argv) -> argv run inside the instance's namespace
        self.db_sock = self._file("db.sock")
        self.daemons: list[Daemon] = []

    def _file(self, suffix):
        return os.path.join(self.dir, f"{self.name}.{suffix}")

    def _in_ns(self, *argv):
        # OVS_RUNDIR: where ovs-vswitchd puts its bridges' management sockets
        return self.netns_argv(["env", f"OVS_RUNDIR={self.dir}", *map(str, argv)])

    def start(self, state: Ledger) -> None:
        os.makedirs(self.dir, exist_ok=True)
        db = self._file("conf.db")
        run(["ovsdb-tool", "create", db, SCHEMA])
        ovsdb = Daemon(f"ovsdb-server@{self.name}",
                       self._in_ns("ovsdb-server", db, f"--remote=punix:{self.db_sock}",
                                   f"--unixctl={self._file('ovsdb-server.ctl')}",
                                   f"--log-file={self._file('ovsdb-server.log')}"),
                       self._file("ovsdb-server.out"))
        self.daemons.append(ovsdb)
        ovsdb.start(state, self._answers(["ovs-vsctl", f"--db=unix:{self.db_sock}",
                                          "--timeout=1", "show"]), READY_TIMEOUT_S)
        self.vsctl("--no-wait", "init")
        ctl = vswitchd_control(self.dir, self.name)
        vswitchd = Daemon(f"ovs-vswitchd@{self.name}",
                          self._in_ns("ovs-vswitchd", f"unix:{self.db_sock}", f"--unixctl={ctl}",
                                      f"--log-file={self._file('ovs-vswitchd.log')}"),
                          self._file("ovs-vswitchd.out"))
        self.daemons.append(vswitchd)
        vswitchd.start(state, self._answers(["ovs-appctl", "-t", ctl, "version"]),
                       READY_TIMEOUT_S)

    @staticmethod
    def _answers(argv):
        def ready():
            try:
                run(argv, timeout=2)
                return True
            except (CommandError, subprocess.TimeoutExpired):
                return False
        return ready

    def vsctl(self, *args: str) -> str:
        return run(["ovs-vsctl", f"--db=unix:{self.db_sock}", "--timeout=5", *args], timeout=10)

    def mgmt(self, bridge: str) -> str:
        """The bridge's OpenFlow management socket, for ovs-ofctl from anywhere."""
        return f"unix:{self.dir}/{bridge}.mgmt"

    def ofctl(self, command: str, bridge: str, *args: str) -> str:
        return run(["ovs-ofctl", "-O", OPENFLOW, command, self.mgmt(bridge), *args], timeout=10)

    def add_bridge(self, bridge: str, dp_type: str, ports: list[str], controller_socket: str,
                   settings: Sequence[str] = ()) -> None:
        """A bridge under the controller listening on `controller_socket`, in fail-mode secure:
        without the controller it keeps the flows it has and learns nothing by itself.
        `settings`: more column=value pairs of the bridge."""
        link = os.path.join(self.dir, "controller.sock")
        if not os.path.lexists(link):
            os.symlink(controller_socket, link)
        args = ["add-br", bridge, "--", "set", "bridge", bridge, f"datapath_type={dp_type}",
                f"protocols={OPENFLOW}", "fail-mode=secure", *settings]
        for port in ports:
            args += ["--", "add-port", bridge, port]
        args += ["--", "set-controller", bridge, f"unix:{link}"]
        self.vsctl(*args)

    def controller_connected(self, bridge: str) -> bool:
        try:
            return self.vsctl("get", "controller", bridge, "is_connected").strip() == "true"
        except CommandError:
            return False

    def status(self) -> dict[str, DaemonRecord]:
        return {d.label: d.status(self.name) for d in self.daemons}

    def stop(self, state: Ledger) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop(state)
        self.daemons = []

