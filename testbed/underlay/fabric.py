"""The OVS underlay (`underlay: ovs`): every rack an OVS bridge under the os-ken fabric app.

Per rack, an Open vSwitch instance of the testbed's own (ovs.py) runs in the rack's namespace
and bridges the switch ends of the rack's links. One controller process serves every rack over
a Unix socket; its app (controllers/fabric.py) makes each bridge a learning switch in flows.
Bridges are in fail-mode secure: traffic flows only once the controller has installed its
table-miss flows, and keeps flowing on the installed flows if the controller dies.
"""

from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.daemons import DaemonRecord
from testbed.host.waiting import wait_until
from testbed.model.state import RunState
from testbed.model.topology import ClusterSpec
from testbed.underlay import ovs
from testbed.underlay.controller import ControllerProcess
from testbed.underlay.racks import Underlay

CONNECT_TIMEOUT_S = 15.0


def describe(dp_type: str) -> str:
    return f"OVS bridge per rack ({ovs.describe_datapath(dp_type)}), os-ken fabric app"


class OvsFabric:
    def __init__(self, spec: ClusterSpec, underlay: Underlay, state: RunState,
                 caps: dict[str, bool]):
        self.spec = spec
        self.underlay = underlay
        self.state = state
        self.dp_type = ovs.datapath_type(caps)
        self.controller = ControllerProcess("fabric controller", ["fabric"],
                                            state.subdir("fabric"))
        self.switches: dict[str, ovs.OvsInstance] = {}  # by rack name

    def describe(self) -> str:
        return describe(self.dp_type)

    def start(self) -> None:
        self.controller.start(self.state)
        for rack in self.spec.racks:
            switch = self.underlay.rack(rack.name)
            instance = ovs.OvsInstance(rack.name, self.state.subdir("fabric", rack.name),
                                       lambda argv, pid=switch.pid: netns.in_node(pid, argv))
            self.switches[rack.name] = instance
            instance.start(self.state)
            ports = switch.link_ends()
            if self.dp_type == "netdev":
                self._ports_for_userspace_datapath(ports)
            instance.add_bridge(rack.name, self.dp_type, [p.name for p in ports],
                                self.controller.ofp_socket)
        self._wait_for_flows()
        self.state.update(fabric={
            "datapath": self.dp_type, "description": self.describe(),
            "controller_pid": self.controller.pid, "control_socket": self.controller.control_socket,
            "racks": {name: {"mgmt": sw.mgmt(name)} for name, sw in self.switches.items()}})

    def _ports_for_userspace_datapath(self, ports):
        """Each rack port becomes the userspace datapath's alone (see ovs.py); the node ends of
        the links compute their own checksums too, as the datapath passes packets on as they
        come."""
        for intf in ports:
            for argv in ovs.userspace_port_argvs(intf.name):
                netns.run(netns.in_node(intf.node.pid, argv))
            node, name = self.underlay.far_end(intf)
            netns.run(netns.in_node(node.pid, ["ethtool", "-K", name, "tx", "off"]))

    def _wait_for_flows(self):
        """Until every bridge is connected and holds the app's table-miss flows."""
        waiting = dict(self.switches)

        def all_connected():
            for name, sw in list(waiting.items()):
                if sw.controller_connected(name) and "CONTROLLER" in sw.ofctl("dump-flows", name):
                    del waiting[name]
            return not waiting

        def controller_lives():
            if not self.controller.status().alive:
                raise TestbedError(f"the fabric controller died: see {self.controller.log}")

        if not wait_until(all_connected, CONNECT_TIMEOUT_S, 0.1, check=controller_lives):
            raise TestbedError(f"rack bridge(s) {', '.join(sorted(waiting))} got no flows from "
                               f"the fabric controller within {CONNECT_TIMEOUT_S:.0f} s "
                               f"(log: {self.controller.log})")

    def daemon_status(self) -> dict[str, DaemonRecord]:
        status = {"controller@fabric": self.controller.status()}
        for sw in self.switches.values():
            status.update(sw.status())
        return status

    def stop(self) -> None:
        for sw in self.switches.values():
            sw.stop(self.state)
        self.switches = {}
        self.controller.stop(self.state)
