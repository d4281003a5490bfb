"""The benchmark: every mode the machine supports plus the bare underlay, side by side.

Every mode's cluster is up at once (their names are the run's own), and the controls' beside
them (controls.py), so that samples can be paired in time: each mode's turn on a path is
measured between two turns of the bare underlay (slicing.py): TCP throughput,
request/response and ICMP in turns of a tenth of a second with the clients idle between them,
UDP throughput in whole tool runs. The time-sliced tests take turns in several sessions, each
with fresh tool processes, the tests' sessions interleaved over the run; compare.py turns the
pairs into ratios with intervals over sessions, and verdicts. A failing tool marks its sample
failed with the tool's message and the run goes on; Ctrl-C keeps the samples so far and tears
every cluster down.
"""
import contextlib
import dataclasses
import datetime
import os
import signal
import subprocess
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TextIO

import testbed
from bench.engine import controls
from bench.engine.cpu import (
    PINNED_CPUS,
    CpuMeter,
    daemon_cpus,
    disturbed,
    idle_polling,
    place,
    session_cpus,
)
from bench.engine.measures import BY_NAME as MEASURES
from bench.engine.measures import FULL_TESTS, HEADLINE_TESTS, Measure
from bench.engine.measures import MEASURES as ALL_MEASURES
from bench.engine.paths import BY_NAME as PATHS
from bench.engine.paths import PATHS as ALL_PATHS
from bench.engine.paths import Endpoint, NotApplicable, endpoints
from bench.engine.paths import Path as BenchPath
from bench.engine.progress import Progress
from bench.engine.results import IPV6_SUFFIX, RunWriter, machine_facts
from bench.engine.slicing import Flow, paired, run_sequential, run_sliced
from bench.tools.tool import ToolError
from testbed.errors import TestbedError
from testbed.host.signals import Interrupted, signals_interrupt
from testbed.lifecycle import doctor
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import BARE, check_mode, load_spec
from testbed.model.topology import ClusterSpec
from testbed.modes import get_mode, mode_names
from testbed.underlay import fabric, ovs

REPO = testbed.REPO
CLUSTER_OVERHEAD_S = 4.0  # estimated bring-up + teardown + warm-up per cluster, for progress
AA_MODE = controls.BARE_AGAIN  # the bare path measured as if it were a mode: the A/A control
# --family: which addresses the paths are measured over. ipv6 and dual build every cluster
# dual-stack; dual measures each mode over both, its IPv6 flows named <mode>-ipv6, paired
# with the same bare turns, so that IPv6 against IPv4 is a comparison of the run
FAMILIES = {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}


def family_label(label: str, family: int, measured: tuple) -> str:
    """A flow's name in the results: the mode's, with -ipv6 where a run measures both."""
    return label + IPV6_SUFFIX if family == 6 and len(measured) == 2 else label


def cluster_label(label: str) -> str:
    """The mode (or control) whose cluster a flow's name belongs to."""
    return label.removesuffix(IPV6_SUFFIX)
TOOL_START_S = 0.3  # starting a tool's server and client in their namespaces, per sample
SESSION_START_S = 1.5  # starting a time-sliced session's tools, every flow's at once
TURN_OVERHEAD_S = 0.01  # signalling and reading counters around a time-sliced turn


DESIGN = ("paired: every mode's turn between two turns of the bare underlay, all clusters up "
          "at once; TCP throughput, request/response and ICMP time-sliced (iperf3 and ping "
          "stopped, rr-probe idle outside their turns; idle vCPUs held polling) in sessions of "
          "fresh tool processes, client and server on two CPUs swapped from session to "
          "session and the modes' daemons in a cycle of four placements, the tests' "
          "sessions interleaved; UDP throughput in whole runs; ratios are "
          "geometric means of paired ratios with Student-t 95 % intervals over sessions; noise "
          "floor per path from the bare path measured twice and vxlan built twice")


@dataclass
class Options:
    topo: str = str(REPO / "topologies" / "default.yaml")
    modes: Optional[list] = None   # None: every registered mode the machine supports
    paths: Optional[list] = None   # None: every path
    tests: Optional[list] = None   # None: HEADLINE_TESTS; ["full"]: FULL_TESTS; ["all"]: all
    repeats: int = 3               # cycles of whole tool runs (udp)
    sessions: int = 8              # sessions of fresh tool processes per time-sliced test
    slices: int = 80               # cycles of time-sliced turns in all sessions (tcp-1; the
    #                                other tests their share: tcp-rr and icmp 0.4, tcp-n a third)
    slice_ms: int = 100            # one time-sliced turn
    controls: bool = True          # vxlan built twice, flannel's modes at one pod MTU
    duration: int = 1              # seconds per UDP sample
    streams: int = 4               # parallel streams of tcp-n
    udp_rate: str = "1G"           # offered UDP rate (iperf3 -b)
    mtu: Optional[int] = None      # underlay MTU override
    bandwidth: Optional[float] = None  # Mbit/s cap on every underlay link
    delay: Optional[float] = None      # ms of netem delay on every underlay link end
    out: str = "results"
    warmup: bool = True
    label: str = ""
    underlay: Optional[str] = None     # linux or ovs; None: the topology's
    family: str = "ipv4"               # ipv4, ipv6 or dual (FAMILIES)
    extra: dict = field(default_factory=dict)


def _check_choice(kind, chosen, known):
    unknown = [c for c in chosen or [] if c not in known]
    if unknown:
        raise TestbedError(f"unknown {kind} {', '.join(unknown)} (known: {', '.join(known)})")


def prepare_spec(opt: Options) -> ClusterSpec:
    _check_choice("family", [opt.family], list(FAMILIES))
    spec = load_spec(opt.topo, underlay=opt.underlay,
                     ip_family=None if opt.family == "ipv4" else "dual")
    if opt.mtu:
        if not 1280 <= opt.mtu <= 9000:
            raise TestbedError(f"--mtu {opt.mtu}: must be from 1280 to 9000")
        spec = dataclasses.replace(spec, mtu=opt.mtu)
    if opt.bandwidth or opt.delay:
        racks = tuple(dataclasses.replace(r, bandwidth=opt.bandwidth or r.bandwidth,
                                          delay=opt.delay or r.delay) for r in spec.racks)
        spec = dataclasses.replace(spec, racks=racks)
    return spec


def choose_modes(opt: Options, spec: ClusterSpec,
                 caps: dict[str, bool]) -> tuple[list[str], dict[str, str]]:
    """([modes to run, bare first], {mode: reason it is left out})."""
    known = mode_names()
    _check_choice("mode", [m for m in opt.modes or [] if m != BARE], known)
    wanted = opt.modes or known
    run, skipped = [BARE], {}
    for name in wanted:
        if name == BARE:
            continue
        try:
            check_mode(name, spec, caps)
        except TestbedError as e:
            skipped[name] = str(e).split(": ", 1)[-1]  # without the topology's path
            continue
        run.append(name)
    return run, skipped


def paths_for(mode: str, chosen: Collection[str] | None) -> list[BenchPath]:
    kind = "node" if mode == BARE else "pod"
    return [p for p in ALL_PATHS if p.kind == kind and (chosen is None or p.name in chosen
                                                         or _baseline_wanted(p, chosen))]


def _baseline_wanted(path, chosen):
    """A node path is measured when a chosen pod path is compared with it."""
    return path.kind == "node" and any(PATHS[c].baseline == path.name for c in chosen)


def _warm_up(client, server):
    """ARP, FDB and BGP-learned next hops resolved before the first sample; TCP slow start is
    left out of every throughput sample by iperf3 itself (-O)."""
    subprocess.run(client.argv(["ping", "-c3", "-i0.05", "-W1", server.ip]), capture_output=True)


def measure_sample(measure: Measure, client: Endpoint, server: Endpoint, opt: Options,
                   mtu: int, daemons: dict[str, int]) -> tuple[dict, float]:
    meter = CpuMeter(daemons).start()
    started = time.monotonic()
    metrics = measure.run(client, server, opt, mtu)
    cpu = meter.stop()
    metrics["cpu_s"] = cpu["machine"]
    metrics["steal_s"] = cpu["steal"]
    gigabytes = metrics.get("bytes", 0) / 1e9
    if measure.moves_bytes and gigabytes > 0:
        metrics["cpu_s_per_gb"] = cpu["machine"] / gigabytes
    for label, seconds in cpu["daemons"].items():
        metrics[f"daemon_cpu_s.{label}"] = seconds
        if measure.moves_bytes and gigabytes > 0:
            metrics[f"daemon_cpu_s_per_gb.{label}"] = seconds / gigabytes
    return metrics, time.monotonic() - started


def cluster_name(mode: str) -> str:
    """Names of this run's clusters: one per mode, up side by side, apart from any other."""
    return f"bench{os.getpid()}-{mode}"


def _bring_up(stack, spec, modes, progress):
    clusters = {}
    for mode in modes:
        progress.show(f"{mode}: bringing the cluster up")
        cluster = Cluster.create(dataclasses.replace(spec, name=cluster_name(mode)), mode)
        clusters[mode] = stack.enter_context(cluster)
        progress.advance(CLUSTER_OVERHEAD_S)
    return clusters


def _pod_mtu(cluster):
    return cluster.state.pod_mtu or cluster.spec.mtu


def _bring_up_controls(stack, spec, clusters, progress, writer):
    """{control name: (Control, cluster)} of the controls this run's modes call for; one whose
    cluster does not give the MTU it is built for is left out, said why."""
    planned = controls.plan(list(clusters), {m: _pod_mtu(c) for m, c in clusters.items()})
    progress.extend(len(planned) * CLUSTER_OVERHEAD_S)
    out = {}
    for control in planned:
        progress.show(f"{control.name}: bringing the control's cluster up")
        own = clusters[control.mode]
        mtu = controls.underlay_mtu_for(control, _pod_mtu(own), spec.mtu)
        cluster = stack.enter_context(Cluster.create(
            dataclasses.replace(spec, name=cluster_name(control.name), mtu=mtu), control.mode))
        progress.advance(CLUSTER_OVERHEAD_S)
        if control.pod_mtu and _pod_mtu(cluster) != control.pod_mtu:
            for path in control.paths:
                writer.skip(control.name, path, f"an underlay MTU of {mtu} gave pods "
                            f"{_pod_mtu(cluster)}, not {control.pod_mtu}")
            continue
        out[control.name] = (control, cluster)
    return out


def _flows(clusters, chosen, writer, built_controls=None, families=(4,)):
    """{bare path: (bare Flow, [mode Flows paired with it])} of every applicable path, over
    the addresses of `families` (the bare flow over the first; with two, the bare path over
    IPv6 is a flow too, `bare-ipv6`); the controls' flows, over the first family, are added to
    the tests they are measured in (_flows_of)."""
    groups = {}
    bare = clusters[BARE]
    for path in paths_for(BARE, chosen):
        try:
            client, server = endpoints(path, bare.state, families[0])
        except NotApplicable as e:
            writer.skip(BARE, path.name, str(e))
            continue
        groups[path.name] = (Flow(BARE, path.name, client, server), [])
    labelled = [(mode, cluster, None, family) for mode, cluster in clusters.items()
                for family in families if mode != BARE or family != families[0]]
    labelled += [(name, cluster, control.paths, families[0])
                 for name, (control, cluster) in (built_controls or {}).items()]
    for label, cluster, only, family in labelled:
        name = family_label(label, family, families)
        kind = "control" if only is not None else label
        for path in paths_for(kind, chosen):
            if only is not None and path.name not in only:
                continue
            try:
                client, server = endpoints(path, cluster.state, family)
                baseline = path.name if path.kind == "node" else path.baseline
                if baseline not in groups:
                    raise NotApplicable(f"the bare underlay has no {baseline} path here")
            except NotApplicable as e:
                writer.skip(name, path.name, str(e))
                continue
            groups[baseline][1].append(Flow(name, path.name, client, server))
    return groups


def _flows_of(measure, bare_flow, flows, control_names):
    """The flows a test measures beside the bare one: the modes', and in the tests controls
    are measured in, the controls' and the bare path again; elsewhere no control's."""
    if measure.name in controls.TESTS:
        return flows + [dataclasses.replace(bare_flow, mode=AA_MODE)]
    return [f for f in flows if f.mode not in control_names]


def _estimate(measures, groups, opt, control_names=()):
    total = 0.0
    for measure in measures:
        for bare_flow, flows in groups.values():
            turns = 2 * len(_flows_of(measure, bare_flow, flows, control_names)) + 1
            if measure.sliced:
                per_session = _cycles(measure, opt)
                total += opt.sessions * (SESSION_START_S + per_session * turns *
                                         (opt.slice_ms / 1000 + TURN_OVERHEAD_S))
            else:
                total += _cycles(measure, opt) * turns * (measure.seconds(opt) + TOOL_START_S)
    return total


def _cycles(measure, opt):
    """Cycles of a whole-run test; of one session of a time-sliced test."""
    if measure.sliced:
        return max(1, round(opt.slices * measure.share / opt.sessions))
    return max(2, round(opt.repeats * measure.share))


def tests_chosen(opt: Options) -> list[str]:
    if opt.tests == ["all"]:
        return list(MEASURES)
    if opt.tests == ["full"]:
        return list(FULL_TESTS)
    _check_choice("test", opt.tests, list(MEASURES))
    return list(opt.tests or HEADLINE_TESTS)


def run(opt: Options,
        progress_stream: TextIO | None = None) -> tuple[Path, dict, dict[str, str]]:
    """Run the benchmark; returns (run_dir, summary, skipped modes)."""
    _check_choice("path", opt.paths, list(PATHS))
    opt.tests = tests_chosen(opt)
    if opt.sessions < 2:
        raise TestbedError(f"--sessions {opt.sessions}: at least 2 (the interval is taken "
                           "over sessions)")
    spec = prepare_spec(opt)
    caps = doctor.capabilities()
    if opt.delay and not caps.get("netem"):
        raise TestbedError("--delay needs the kernel's netem qdisc, which this kernel lacks "
                           "(see `testbed doctor`): delay cannot be emulated on this machine")
    modes, skipped = choose_modes(opt, spec, caps)
    measures = [m for m in ALL_MEASURES if m.name in opt.tests]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(opt.out) / f"{stamp}-{spec.name}{'-' + opt.label if opt.label else ''}"
    writer = RunWriter(run_dir)
    underlay = (fabric.describe(ovs.datapath_type(caps)) if spec.underlay == "ovs"
                else "Linux bridge per rack (kernel)")
    datapaths = {"underlay": underlay + (", tc htb" if opt.bandwidth else "") +
                 (", tc netem" if opt.delay else "")}
    datapaths.update({m: get_mode(m).describe_datapath(spec, caps) for m in modes if m != BARE})
    options = {k: v for k, v in dataclasses.asdict(opt).items() if k != "extra"}
    progress = Progress(len(modes) * CLUSTER_OVERHEAD_S, progress_stream)
    status, groups, built = "complete", {}, {}
    started = time.monotonic()
    try:
        # SIGINT too: started in the background by a script, the run inherits SIGINT ignored
        with signals_interrupt(signal.SIGINT), contextlib.ExitStack() as stack:
            polling = stack.enter_context(idle_polling())
            facts = {**machine_facts(REPO, datapaths, options), "topology": spec.path,
                     "modes": modes, "skipped_modes": skipped, "design": DESIGN,
                     "idle_cpus_poll": polling, "placement": PLACEMENT}
            writer.write_json("machine.json", facts)
            clusters = _bring_up(stack, spec, modes, progress)
            if opt.controls:
                built = _bring_up_controls(stack, spec, clusters, progress, writer)
                facts["controls"] = {name: {"mode": c.mode, "paths": list(c.paths),
                                            "pod_mtu": _pod_mtu(cluster)}
                                     for name, (c, cluster) in built.items()}
                writer.write_json("machine.json", facts)
            groups = _flows(clusters, opt.paths, writer, built, FAMILIES[opt.family])
            progress.extend(_estimate(measures, groups, opt, built))
            if opt.warmup:
                progress.show("warm-up: every path")
                for bare_flow, flows in groups.values():
                    for flow in [bare_flow] + flows:
                        _warm_up(flow.client, flow.server)
            sliced = [m for m in measures if m.sliced]
            for session in range(1, opt.sessions + 1):
                placed = _place_daemons(clusters, built, session)
                for measure in sliced:
                    for bare_flow, flows in groups.values():
                        _run_session(measure, session, bare_flow,
                                     _flows_of(measure, bare_flow, flows, built), opt,
                                     progress, writer, placed)
            if sliced:  # whole tool runs leave the daemons to the scheduler
                _place_daemons(clusters, built, None)
            for measure in (m for m in measures if not m.sliced):
                for bare_flow, flows in groups.values():
                    turns = []
                    try:
                        _run_whole(measure, bare_flow, _flows_of(measure, bare_flow, flows,
                                                                 built), clusters, opt,
                                   progress, turns)
                    finally:  # an interrupted test keeps the turns it measured
                        for sample in paired(turns, bare_flow):
                            writer.add({**sample, "test": measure.name})
    except (KeyboardInterrupt, Interrupted):
        status = "interrupted"
    finally:
        progress.close()
        measured = {(s["mode"], s["path"]) for s in writer.samples}
        summary = writer.finish(
            status, controls.aa_groups([(p.name, p.kind) for p in ALL_PATHS], measured),
            {p.name: p.baseline for p in ALL_PATHS if p.baseline},
            elapsed_s=round(time.monotonic() - started, 1))
    return run_dir, summary, skipped


PLACEMENT = ("time-sliced tests: every flow's client and server pinned to two different CPUs "
             "(taskset), client on CPU 0 and server on CPU 1 in odd sessions, swapped in even "
             "ones; the modes' daemons (forwarders, ovs-vswitchd, BIRD) pinned too, in a "
             "cycle of four placements over sessions: all on CPU 0 (sessions 1-2), all on "
             "CPU 1 (3-4), the first node's on CPU 0 and the second's on CPU 1 (5-6), the "
             "other way (7-8), recorded per sample (`daemon_cpus`); whole tool runs: client "
             "on CPU 0, server on CPU 1 (iperf3 -A), daemons left to the scheduler; each "
             "sample records where its processes last ran (`placement`)") if PINNED_CPUS else \
    "one CPU: client and server share it"


def _place_daemons(clusters, built, session):
    """Pin every cluster's daemons as the session's number says (cpu.daemon_cpus), or let them
    run anywhere when session is None; {flow's mode: {daemon label: CPU}} of those pinned."""
    labelled = [*clusters.items(), *((name, cluster) for name, (_c, cluster) in built.items())]
    placed = {}
    for label, cluster in labelled:
        pids = cluster.mode.daemons(cluster.context) if cluster.mode else {}
        cpus = daemon_cpus(list(pids), session) if session is not None and pids else None
        place(pids, cpus)
        if cpus:
            placed[label] = placed[label + IPV6_SUFFIX] = cpus  # its flows of both families
    return placed


def _run_session(measure, session, bare_flow, flows, opt, progress, writer, placed=None):
    """One session of a time-sliced test: fresh tool processes for every flow, placed as the
    session's number says, taking turns for the session's cycles; each sample of a mode
    whose daemons were pinned records where (`daemon_cpus`)."""
    cycles = _cycles(measure, opt)
    label = f"{measure.name}, {bare_flow.path} and the pod paths paired with it"
    progress.show(f"{label}: session {session} of {opt.sessions}, {cycles} cycles of "
                  f"{opt.slice_ms} ms turns")
    cpus = session_cpus(session)
    turns = []

    def opened(all_flows):
        session_tools = measure.session(all_flows, opt, cpus)
        progress.advance(SESSION_START_S)
        return session_tools
    try:
        run_sliced(opened, flows, bare_flow, cycles, opt.slice_ms / 1000, turns,
                   lambda s: progress.advance(s + TURN_OVERHEAD_S),
                   first=(session - 1) * cycles + 1)
    finally:  # an interrupted session keeps the turns it measured
        for sample in paired(turns, bare_flow, session):
            if sample["mode"] in (placed or {}):
                sample["daemon_cpus"] = placed[sample["mode"]]
            writer.add({**sample, "test": measure.name})


def _run_whole(measure, bare_flow, flows, clusters, opt, progress, turns):
    label = f"{measure.name}, {bare_flow.path} and the pod paths paired with it"

    def one(flow):
        cluster = clusters[BARE if flow.mode == AA_MODE else cluster_label(flow.mode)]
        daemons = cluster.mode.daemons(cluster.context) if cluster.mode else {}
        progress.show(f"{label}: {flow.mode} {flow.path}")
        out = _measure_once(measure, flow.client, flow.server, opt, _pod_mtu(cluster), daemons)
        progress.advance(measure.seconds(opt) + TOOL_START_S)
        return out
    run_sequential(flows, bare_flow, _cycles(measure, opt), one, turns)


def steal_fraction(metrics: dict, seconds: float) -> float:
    """Share of the machine's CPU time the hypervisor gave to others during a sample."""
    capacity = seconds * (os.cpu_count() or 1)
    return metrics.get("steal_s", 0.0) / capacity if capacity > 0 else 0.0


def _measure_once(measure, client, server, opt, mtu, daemons):
    """One whole run of a tool, never repeated: a sample taken again later would no longer sit
    between its bare turns. Steal is recorded, and pairing cancels what the machine does to
    both sides of a pair."""
    try:
        metrics, seconds = measure_sample(measure, client, server, opt, mtu, daemons)
    except ToolError as e:
        return {"ok": False, "error": str(e), "metrics": {}}
    stolen = metrics.get("steal_s", 0.0)
    return {"ok": True, "error": None, "metrics": metrics, "seconds": seconds,
            "steal_fraction": steal_fraction(metrics, seconds),
            "disturbed": disturbed(stolen, seconds)}


def newest_run(out: str = "results") -> Path:
    runs = sorted(p for p in Path(out).glob("*/summary.json")) if os.path.isdir(out) else []
    if not runs:
        raise TestbedError(f"no benchmark run under {out}/ (run `testbed bench` first)")
    return runs[-1].parent
