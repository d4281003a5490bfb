"""The openflow CNI mode's app: every node's br-int programmed from what the cluster holds.

In the style of Antrea: each node's OVS bridge br-int holds its pods' ports, a gateway port
gw0 (the node's own address in its pod subnet) and a VXLAN port tun0 whose remote end is set
per flow. The testbed tells this app about nodes and pods over the control socket; the app
installs every flow ahead of traffic, so no packet ever needs the controller:

  table 0  classifier   from tun0 or gw0, or from a pod port with that pod's own source
                        address (ARP and IP) -> table 10; anything else is dropped
  table 10 ARP          requests for a local pod, the gateway or a peer node's gateway are
                        answered by the flow itself; other ARP is dropped; IP -> conntrack
  table 15 conntrack    connections that enter from gw0 (the node's stack: Service traffic
                        after kube-proxy's DNAT, NodePorts) are committed with a mark, and
                        their replies are sent back through gw0 so that the node's conntrack
                        undoes the NAT, as Antrea does; everything else -> table 20
  table 20 L3           local pod IP -> its port (MACs rewritten); the gateway IP -> gw0;
                        a peer node's pod subnet -> tun0 with that node as tunnel destination
                        (TTL decremented, as by a router); other IP -> gw0 (the node routes it)

IPv6 (a dual-stack cluster) takes the same tables, as Antrea's pipeline does: a pod may send
from its IPv6 address or a link-local one; neighbour solicitations and advertisements and IPv6
multicast are switched as by a learning switch (NORMAL), so the pods and gw0 answer neighbour
discovery themselves instead of flows answering ARP; IPv6 to a peer node's IPv6 pod subnet
tunnels to that node's IPv6 address.

Flows are permanent, so a dead controller leaves the datapath forwarding (fail-mode secure).
"""
import ipaddress
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.controller.ofp_event import EventOFPMsgBase
from os_ken.ofproto import ofproto_v1_3

from controllers import control
from controllers.control import Counters
from controllers.flows import add_flow, delete_all_flows, delete_flows

CLASSIFY, ARP, CONNTRACK, L3 = 0, 10, 15, 20
CT_ZONE = 65520      # Antrea's zone for pod traffic
FROM_GATEWAY = 0x20  # ct_mark of connections that came through the node's stack (Antrea's)
CT_TRACKED, CT_NEW, CT_REPLY = 0x20, 0x01, 0x08  # ct_state bits
PEER_GATEWAY_MAC = "aa:bb:cc:dd:ee:ff"  # what a node's ARP for a peer node's gateway gets
ICMPV6, NEIGHBOUR_SOLICITATION, NEIGHBOUR_ADVERTISEMENT = 58, 135, 136
LINK_LOCAL, MULTICAST_V6 = ("fe80::", "ffc0::"), ("ff00::", "ff00::")  # (address, mask)


class Family:
    """The OpenFlow fields of one IP family, and the keys of the facts the testbed sends."""

    def __init__(self, eth_type: int, src: str, dst: str, tunnel_dst: str, suffix: str):
        self.eth_type, self.src, self.dst, self.tunnel_dst = eth_type, src, dst, tunnel_dst
        self.suffix = suffix  # "" for IPv4's facts ("ip", "lease"), "_v6" for IPv6's

    def match(self, parser: Any, **fields: Any) -> Any:
        return parser.OFPMatch(eth_type=self.eth_type, **fields)

    def to(self, parser: Any, address: Any, **fields: Any) -> Any:
        return self.match(parser, **fields, **{self.dst: address})

    def fact(self, facts: dict, key: str) -> Any:
        return facts.get(key + self.suffix)


IPV4 = Family(0x0800, "ipv4_src", "ipv4_dst", "tun_ipv4_dst", "")
IPV6 = Family(0x86dd, "ipv6_src", "ipv6_dst", "tun_ipv6_dst", "_v6")


class PodNetwork(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.nodes = {}      # name -> node facts from the testbed
        self.pods = {}       # node name -> {pod name: pod facts}
        self.datapaths = {}  # dpid -> Datapath
        self.port_numbers = {}  # dpid -> {port name: number}
        self.counters = Counters.shared()
        control.handle("node", self.add_node)
        control.handle("forget_node", self.forget_node)
        control.handle("pod", self.add_pod)
        control.handle("forget_pod", self.forget_pod)

    # --- what the testbed tells ----------------------------------------------------------
    def add_node(self, req: dict) -> dict:
        """{"name", "dpid", "ip", "lease", "gateway_ip", "gateway_mac"}, and in a dual-stack
        cluster "ip_v6", "lease_v6" and "gateway_ip_v6"."""
        self.nodes[req["name"]] = req
        self.pods.setdefault(req["name"], {})
        for name in self.nodes:  # every node routes to the new one's pods
            self.sync(name)
        return {"ok": True}

    def forget_node(self, req: dict) -> dict:
        gone = self.nodes.pop(req["name"], None)
        self.pods.pop(req["name"], None)
        if gone:
            for name in self.nodes:
                dp = self._datapath(name)
                if dp:
                    for family in self._families(gone):
                        delete_flows(dp, L3, family.to(dp.ofproto_parser, self._net(
                            family.fact(gone, "lease"))))
                    delete_flows(dp, ARP, dp.ofproto_parser.OFPMatch(
                        eth_type=0x0806, arp_op=1, arp_tpa=gone["gateway_ip"]))
        return {"ok": True}

    def add_pod(self, req: dict) -> dict:
        """{"node", "name", "ip", "mac", "port"}, and "ip_v6" in a dual-stack cluster"""
        self.pods.setdefault(req["node"], {})[req["name"]] = req
        self.sync(req["node"])
        return {"ok": True}

    def forget_pod(self, req: dict) -> dict:
        pod = self.pods.get(req["node"], {}).pop(req["name"], None)
        dp = self._datapath(req["node"])
        if pod and dp:
            parser = dp.ofproto_parser
            delete_flows(dp, ARP, parser.OFPMatch(eth_type=0x0806, arp_op=1, arp_tpa=pod["ip"]))
            number = self.port_numbers[dp.id].get(pod["port"])
            for family in self._families(pod):
                delete_flows(dp, L3, family.to(parser, family.fact(pod, "ip")))
                if number is not None:
                    for match in self._from_pod(parser, number, family, family.fact(pod, "ip")):
                        delete_flows(dp, CLASSIFY, match)
        return {"ok": True}

    # --- switches ----------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_joined(self, ev: EventOFPMsgBase) -> None:
        dp = ev.msg.datapath
        parser = dp.ofproto_parser
        with control.lock:
            self.datapaths[dp.id] = dp
            self.port_numbers[dp.id] = {}
            self.counters.switch_joined(dp.id)
            delete_all_flows(dp)
        dp.send_msg(parser.OFPPortDescStatsRequest(dp, 0))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def ports_described(self, ev: EventOFPMsgBase) -> None:
        dp = ev.msg.datapath
        with control.lock:
            for port in ev.msg.body:
                self.port_numbers[dp.id][port.name.decode()] = port.port_no
            self._sync_datapath(dp)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def port_changed(self, ev: EventOFPMsgBase) -> None:
        dp, port = ev.msg.datapath, ev.msg.desc
        with control.lock:
            ports = self.port_numbers.setdefault(dp.id, {})
            if ev.msg.reason == dp.ofproto.OFPPR_DELETE:
                ports.pop(port.name.decode(), None)
            else:
                ports[port.name.decode()] = port.port_no
                self._sync_datapath(dp)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev: EventOFPMsgBase) -> None:
        with control.lock:  # nothing should come here; counted to prove it
            self.counters.packet_in(ev.msg.datapath.id)

    # --- flows ---------------------------------------------------------------------------
    def _datapath(self, node_name):
        node = self.nodes.get(node_name)
        return self.datapaths.get(int(node["dpid"], 16)) if node else None

    def _sync_datapath(self, dp):
        for name, node in self.nodes.items():
            if int(node["dpid"], 16) == dp.id:
                self.sync(name)

    def sync(self, node_name: str) -> None:
        """Install every flow the node's bridge needs now (adding a flow that is there
        already replaces it); flows needing a port not yet seen wait for it."""
        dp = self._datapath(node_name)
        ports = self.port_numbers.get(dp.id, {}) if dp else {}
        if dp is None or "gw0" not in ports or "tun0" not in ports:
            return
        parser = dp.ofproto_parser
        node = self.nodes[node_name]
        gw, tun = ports["gw0"], ports["tun0"]
        to_gateway = [parser.OFPActionSetField(eth_dst=node["gateway_mac"]),
                      parser.OFPActionOutput(gw)]
        # classifier
        add_flow(dp, CLASSIFY, 200, parser.OFPMatch(in_port=tun), goto=ARP)
        add_flow(dp, CLASSIFY, 200, parser.OFPMatch(in_port=gw), goto=ARP)
        # ARP answered by flows; other ARP dropped
        add_flow(dp, ARP, 100, self._arp_request(parser, node["gateway_ip"]),
                 self._arp_reply(parser, node["gateway_mac"], node["gateway_ip"]))
        add_flow(dp, ARP, 50, parser.OFPMatch(eth_type=0x0806), [])
        if "lease_v6" in node:  # Antrea's IPv6 flows: link-local senders, ND and multicast
            normal = [parser.OFPActionOutput(ofproto_v1_3.OFPP_NORMAL)]
            add_flow(dp, CLASSIFY, 100, IPV6.match(parser, ipv6_src=LINK_LOCAL), goto=ARP)
            for kind in (NEIGHBOUR_SOLICITATION, NEIGHBOUR_ADVERTISEMENT):
                add_flow(dp, ARP, 100, IPV6.match(parser, ip_proto=ICMPV6, icmpv6_type=kind,
                                                  icmpv6_code=0), normal)
            add_flow(dp, ARP, 90, IPV6.to(parser, MULTICAST_V6), normal)
        for family in self._families(node):
            self._sync_family(dp, node_name, family, ports, to_gateway)
        add_flow(dp, CONNTRACK, 0, parser.OFPMatch(), goto=L3)

    def _sync_family(self, dp, node_name, family, ports, to_gateway):
        """The flows of one IP family: conntrack, routing to the node, its peers, its pods."""
        parser = dp.ofproto_parser
        node = self.nodes[node_name]
        gw, tun = ports["gw0"], ports["tun0"]
        # IP on to conntrack: the node's connections committed with a mark, replies to gw0
        add_flow(dp, ARP, 0, family.match(parser), [self._conntrack(parser, commit=False)])
        new_from_gateway = family.match(parser, in_port=gw,
                                        ct_state=(CT_TRACKED | CT_NEW, CT_TRACKED | CT_NEW))
        add_flow(dp, CONNTRACK, 200, new_from_gateway, [self._conntrack(parser, commit=True)])
        add_flow(dp, CONNTRACK, 190, family.match(
            parser, ct_state=(CT_TRACKED | CT_REPLY, CT_TRACKED | CT_REPLY),
            ct_mark=FROM_GATEWAY), to_gateway)
        # L3: the node itself, other nodes' pods, everything else to the node's stack
        add_flow(dp, L3, 200, family.to(parser, family.fact(node, "gateway_ip")), to_gateway)
        add_flow(dp, L3, 10, family.match(parser), to_gateway)
        for peer_name, peer in self.nodes.items():
            if peer_name == node_name or family.fact(peer, "lease") is None:
                continue
            # a peer node's own address answering a pod here (a Service backed by a node, as
            # default/kubernetes is): through the node's stack, whose conntrack saw the
            # request leave and undoes its NAT
            add_flow(dp, CLASSIFY, 210, family.match(
                parser, in_port=tun, **{family.src: family.fact(peer, "ip")}), to_gateway)
            if family is IPV4:
                add_flow(dp, ARP, 90, self._arp_request(parser, peer["gateway_ip"]),
                         self._arp_reply(parser, PEER_GATEWAY_MAC, peer["gateway_ip"]))
            add_flow(dp, L3, 150, family.to(parser, self._net(family.fact(peer, "lease"))),
                     [parser.OFPActionDecNwTtl(),
                      parser.OFPActionSetField(**{family.tunnel_dst: family.fact(peer, "ip")}),
                      parser.OFPActionSetField(eth_src=node["gateway_mac"]),
                      parser.OFPActionSetField(eth_dst=PEER_GATEWAY_MAC),
                      parser.OFPActionOutput(tun)])
        # local pods
        for pod in self.pods.get(node_name, {}).values():
            number, ip = ports.get(pod["port"]), family.fact(pod, "ip")
            if number is None or ip is None:
                continue
            for match in self._from_pod(parser, number, family, ip):
                add_flow(dp, CLASSIFY, 100, match, goto=ARP)
            if family is IPV4:
                add_flow(dp, ARP, 100, self._arp_request(parser, ip),
                         self._arp_reply(parser, pod["mac"], ip))
            add_flow(dp, L3, 200, family.to(parser, ip),
                     [parser.OFPActionSetField(eth_src=node["gateway_mac"]),
                      parser.OFPActionSetField(eth_dst=pod["mac"]),
                      parser.OFPActionOutput(number)])

    @staticmethod
    def _families(facts: dict) -> list:
        """The families a node's or pod's facts have addresses of, IPv4 first."""
        return [IPV4] + ([IPV6] if IPV6.fact(facts, "ip") is not None else [])

    @staticmethod
    def _conntrack(parser, commit):
        """Look the packet up in the pod zone (commit: and record it as the gateway's), then
        continue in the conntrack table (commit: in L3)."""
        if commit:
            return parser.NXActionCT(flags=1, zone_src="", zone_ofs_nbits=CT_ZONE,
                                     recirc_table=L3, alg=0,
                                     actions=[parser.OFPActionSetField(ct_mark=FROM_GATEWAY)])
        return parser.NXActionCT(flags=0, zone_src="", zone_ofs_nbits=CT_ZONE,
                                 recirc_table=CONNTRACK, alg=0, actions=[])

    @staticmethod
    def _net(cidr):
        net = ipaddress.ip_network(cidr)
        return (str(net.network_address), str(net.netmask))

    @staticmethod
    def _from_pod(parser, port, family, ip):
        """A pod may send only from its own address (no spoofing), ARP and IP alike."""
        matches = [family.match(parser, in_port=port, **{family.src: ip})]
        if family is IPV4:
            matches.append(parser.OFPMatch(in_port=port, eth_type=0x0806, arp_spa=ip))
        return matches

    @staticmethod
    def _arp_request(parser, ip):
        return parser.OFPMatch(eth_type=0x0806, arp_op=1, arp_tpa=ip)

    @staticmethod
    def _arp_reply(parser, mac, ip):
        """Turn the request into the reply in place and send it back where it came from."""
        return [parser.NXActionRegMove(src_field="eth_src", dst_field="eth_dst", n_bits=48),
                parser.OFPActionSetField(eth_src=mac),
                parser.OFPActionSetField(arp_op=2),
                parser.NXActionRegMove(src_field="arp_sha", dst_field="arp_tha", n_bits=48),
                parser.NXActionRegMove(src_field="arp_spa", dst_field="arp_tpa", n_bits=32),
                parser.OFPActionSetField(arp_sha=mac),
                parser.OFPActionSetField(arp_spa=ip),
                parser.OFPActionOutput(ofproto_v1_3.OFPP_IN_PORT)]
