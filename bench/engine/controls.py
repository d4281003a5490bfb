"""The run's controls: datapaths that are the same, measured as if they were different.

Their comparisons must read `same`; what they show instead is the run's noise (compare.py
takes the floor of each path from them).
  bare-again       the bare path measured a second time as if it were a mode (tool processes
                   of its own between the same two nodes): the node path's A/A
  vxlan-again      the vxlan mode built a second time, in a cluster of its own: the pod paths'
                   A/A, on one node and across nodes
  host-gw-mtu1450  flannel's other modes built on an underlay whose MTU gives their pods
  udp-mtu1450      vxlan's pod MTU (1450 on a 1500 underlay): pod to pod on one node the three
                   cross one datapath (two veths and cni0), so at one MTU they must read `same`
"""
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

BARE_AGAIN = "bare-again"
AGAIN_OF = "vxlan"                 # the mode built twice
EQUAL_MTU_OF = "vxlan"             # whose pod MTU the equal-MTU controls take
EQUAL_MTU_MODES = ("host-gw", "udp")
AGAIN_PATHS = ("pod-same-node", "pod-cross-node")
EQUAL_MTU_PATHS = ("pod-same-node",)
TESTS = ("tcp-1", "tcp-rr", "icmp")  # the tests controls are measured in


@dataclass(frozen=True)
class Control:
    name: str      # as it appears among the modes of the run's results
    mode: str      # the mode whose cluster it is
    paths: tuple   # the pod paths it is measured on
    pod_mtu: int = 0  # 0: the mode's own; else its cluster's underlay is set to give this


def again_name(mode: str) -> str:
    return f"{mode}-again"


def plan(modes: list, pod_mtus: dict) -> list:
    """Controls of a run of `modes` whose clusters gave their pods `pod_mtus` ({mode: MTU});
    a control is planned only when the modes it stands beside are in the run."""
    out = []
    if AGAIN_OF in modes:
        out.append(Control(again_name(AGAIN_OF), AGAIN_OF, AGAIN_PATHS))
    target = pod_mtus.get(EQUAL_MTU_OF)
    for mode in EQUAL_MTU_MODES:
        if target and mode in modes and pod_mtus.get(mode) and pod_mtus[mode] != target:
            out.append(Control(f"{mode}-mtu{target}", mode, EQUAL_MTU_PATHS, target))
    return out


def underlay_mtu_for(control: Control, own_pod_mtu: int, underlay_mtu: int) -> int:
    """The underlay MTU that gives the control's pods its MTU: the mode takes the same
    overhead off the underlay whatever its size (flannel: vxlan 50, udp 28, host-gw 0)."""
    if not control.pod_mtu:
        return underlay_mtu
    return underlay_mtu + control.pod_mtu - own_pod_mtu


def aa_groups(paths: list, measured: set) -> list:
    """[(path, [modes])] of the run's A/A controls as compare.noise_floor takes them: on node
    paths the bare path again (against bare), on pod paths the mode and its second cluster."""
    out = []
    for path, kind in paths:
        if kind == "node":
            out.append((path, [BARE_AGAIN]))
        elif (again_name(AGAIN_OF), path) in measured:
            out.append((path, [AGAIN_OF, again_name(AGAIN_OF)]))
    return out


def equal_mtu_names(names: Iterable[str]) -> list:
    """The equal-MTU controls among a run's mode names, with the mode whose MTU they took."""
    found = [n for n in names if any(n.startswith(f"{m}-mtu") for m in EQUAL_MTU_MODES)]
    return [EQUAL_MTU_OF] + found if found else []


@dataclass(frozen=True)
class Check:
    """A comparison of a run that must read `same`: a/b on `path`."""
    kind: str      # "again" (one mode built twice), "bare" (the bare path twice), "mtu"
    path: str
    a: str
    b: str
    title: str
    within: bool   # an A/A of the pod paths: its ratio must also be within ±5 % of 1


def checks(names: Iterable[str]) -> list:
    """The control checks of a run whose comparisons name the modes `names`: vxlan against
    vxlan-again on both pod paths, bare-again against bare, and every pair of the equal-MTU
    controls with the mode whose MTU they took (in name order)."""
    again = again_name(AGAIN_OF)
    out = [Check("again", path, AGAIN_OF, again, f"{AGAIN_OF} / {again} (one mode built twice)",
                 True) for path in AGAIN_PATHS]
    out.append(Check("bare", "node-node", BARE_AGAIN, "bare",
                     f"{BARE_AGAIN} / bare (the bare path twice)", False))
    out += [Check("mtu", EQUAL_MTU_PATHS[0], a, b, f"{a} / {b} (one pod MTU)", False)
            for a, b in combinations(sorted(equal_mtu_names(names)), 2)]
    return out
