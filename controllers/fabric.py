"""The OVS underlay's fabric app: each rack bridge is an L2 learning switch, in flows.

Two tables, so that a learned address never costs a packet-in again:
  table 0 (source check)  in_port + eth_src known -> goto 1;  miss -> copy to controller, goto 1
  table 1 (forwarding)    eth_dst known -> output its port;   miss -> flood
The controller learns from the copies and installs both flows for the address; once every
address on a segment has sent once, steady-state traffic never reaches the controller.
Flows are permanent (no timeouts), so they keep forwarding if the controller goes away
(bridges are in fail-mode secure).
"""
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.controller.ofp_event import EventOFPMsgBase
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3

from controllers import control
from controllers.control import Counters
from controllers.flows import add_flow, delete_all_flows

SOURCE_TABLE, FORWARD_TABLE = 0, 1
LEARNED = 10  # priority of learned-address flows; table misses are 0


class FabricSwitch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ports = {}  # dpid -> {mac: port}
        self.counters = Counters.shared()

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_joined(self, ev: EventOFPMsgBase) -> None:
        with control.lock:
            self._switch_joined(ev.msg.datapath)

    def _switch_joined(self, dp):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self.ports[dp.id] = {}
        delete_all_flows(dp)
        to_controller = parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)
        add_flow(dp, SOURCE_TABLE, 0, parser.OFPMatch(), [to_controller], goto=FORWARD_TABLE)
        add_flow(dp, FORWARD_TABLE, 0, parser.OFPMatch(),
                      [parser.OFPActionOutput(ofp.OFPP_FLOOD)])
        self.counters.switch_joined(dp.id)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev: EventOFPMsgBase) -> None:
        with control.lock:
            self._packet_in(ev.msg)

    def _packet_in(self, msg):
        dp = msg.datapath
        parser = dp.ofproto_parser
        self.counters.packet_in(dp.id)
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        in_port = msg.match["in_port"]
        if eth is None or self.ports.setdefault(dp.id, {}).get(eth.src) == in_port:
            return
        self.ports[dp.id][eth.src] = in_port
        # (re)learn: a moved address replaces its flows, the match being the same
        add_flow(dp, SOURCE_TABLE, LEARNED, parser.OFPMatch(in_port=in_port, eth_src=eth.src),
                      [], goto=FORWARD_TABLE)
        add_flow(dp, FORWARD_TABLE, LEARNED, parser.OFPMatch(eth_dst=eth.src),
                      [parser.OFPActionOutput(in_port)])
        self.counters.learned(dp.id, eth.src)
