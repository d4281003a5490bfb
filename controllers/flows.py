"""Flow-mods both apps send, in OpenFlow 1.3; each added flow is counted per switch."""
from os_ken.controller.controller import Datapath

from controllers.control import Counters


def add_flow(dp: Datapath, table: int, priority: int, match: object,
             actions: list | None = None, goto: int | None = None) -> None:
    """Add (or replace: same table, priority and match) a permanent flow: apply `actions`,
    then continue in table `goto` if given; neither means drop."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    if goto is not None:
        inst.append(parser.OFPInstructionGotoTable(goto))
    dp.send_msg(parser.OFPFlowMod(dp, table_id=table, priority=priority, match=match,
                                  instructions=inst))
    Counters.shared().flow_installed(dp.id)


def delete_flows(dp: Datapath, table: int, match: object) -> None:
    """Delete the flows of `table` that `match` covers."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    dp.send_msg(parser.OFPFlowMod(dp, table_id=table, command=ofp.OFPFC_DELETE, match=match,
                                  out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY))


def delete_all_flows(dp: Datapath) -> None:
    """A (re)connecting switch starts from a clean slate: the app owns every flow it has."""
    delete_flows(dp, dp.ofproto.OFPTT_ALL, dp.ofproto_parser.OFPMatch())
