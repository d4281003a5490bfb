"""The bgp mode's topology key: `bgp: {routeReflectors: [node, ...], holdTime: s}`."""
from dataclasses import dataclass

from testbed.model.spec import Section

DEFAULT_HOLD_TIME = 9  # s; Calico keeps BIRD's 240, the testbed shows failures sooner


@dataclass(frozen=True)
class BgpOptions:
    route_reflectors: tuple[str, ...] = ()  # node names; empty: full mesh
    hold_time: int = DEFAULT_HOLD_TIME      # s; keepalives every third of it


def read_bgp(section: Section) -> BgpOptions:
    doc = section.fields({"routeReflectors", "holdTime"})
    hold = doc.get("holdTime", DEFAULT_HOLD_TIME)
    if isinstance(hold, bool) or not isinstance(hold, int) or not 3 <= hold <= 65535:
        section.fail("holdTime", hold, "must be whole seconds from 3 to 65535 (BGP's range; "
                     "keepalives go every third of it)")
    reflectors = doc.get("routeReflectors", [])
    if not isinstance(reflectors, list):
        section.fail("routeReflectors", reflectors, "must be a list of node names")
    nodes = section.spec.nodes
    names = [n.name for n in nodes]
    for i, name in enumerate(reflectors):
        if name not in names:
            section.fail(f"routeReflectors[{i}]", name, "no such node")
    racks_with_pods = {n.rack for n in nodes}
    covered = {n.rack for n in nodes if n.name in reflectors}
    if reflectors and covered != racks_with_pods:
        missing = sorted(racks_with_pods - covered)
        section.fail("routeReflectors", reflectors,
                     f"every rack needs a route reflector; none in {', '.join(missing)}")
    return BgpOptions(tuple(reflectors), hold)
