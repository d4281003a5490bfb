"""The benchmark: every mode the machine supports plus the bare underlay, side by side.

Every mode's cluster is up at once (their names are the run's own), so that samples can be
paired in time: each mode's turn on a path is measured between two turns of the bare underlay
(slicing.py): TCP throughput, request/response and ICMP in turns of a tenth of a second
with the clients idle between them, UDP throughput in whole tool runs. compare.py turns the
pairs into ratios with intervals and verdicts. A failing tool marks its sample failed with
the tool's message and the run goes on; Ctrl-C keeps the samples so far and tears every
cluster down.
"""
import contextlib
import dataclasses
import datetime
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from testbed.core import doctor
from testbed.core.cluster import Cluster
from testbed.core.preflight import BARE, check_mode, load_spec
from testbed.errors import TestbedError
from testbed.host.signals import Interrupted, signals_interrupt
from testbed.modes import get_mode, mode_names
from testbed.underlay import fabric, ovs

from .compare import COMPARED, interval, log_ratios
from .cpu import CpuMeter, disturbed, idle_polling
from .measures import BY_NAME as MEASURES
from .measures import DEFAULT_TESTS
from .measures import MEASURES as ALL_MEASURES
from .paths import BY_NAME as PATHS
from .paths import PATHS as ALL_PATHS
from .paths import NotApplicable, endpoints
from .progress import Progress
from .results import RunWriter, machine_facts
from .slicing import Flow, paired, run_sequential, run_sliced
from .tool import ToolError

REPO = Path(__file__).resolve().parent.parent
CLUSTER_OVERHEAD_S = 2.0  # estimated bring-up + teardown + warm-up per cluster, for progress
AA_MODE = "bare-again"  # the bare path measured as if it were a mode: the A/A control
AA_TESTS = ("tcp-1", "tcp-rr", "icmp")  # the tests the noise floor is taken for
TOOL_START_S = 0.3  # starting a tool's server and client in their namespaces, per sample
MAX_CYCLES_FACTOR = 3  # a flow short of its test's precision gets up to this many times the cycles


DESIGN = ("paired: every mode's turn between two turns of the bare underlay, all clusters up "
          "at once; TCP throughput, request/response and ICMP time-sliced (iperf3 and ping "
          "stopped, rr-probe idle outside their turns; idle vCPUs held polling), UDP throughput in "
          "whole runs; ratios are geometric means of paired ratios with "
          "Student-t 95 % intervals; noise floor from the bare path measured twice")


@dataclass
class Options:
    topo: str = str(REPO / "topologies" / "default.yaml")
    modes: Optional[list] = None   # None: every registered mode the machine supports
    paths: Optional[list] = None   # None: every path
    tests: Optional[list] = None   # None: DEFAULT_TESTS; ["all"]: every test
    repeats: int = 3               # cycles of whole tool runs (udp)
    slices: int = 60               # cycles of time-sliced turns (all but udp; tcp-n a third)
    slice_ms: int = 100            # one time-sliced turn
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
    extra: dict = field(default_factory=dict)


def _check_choice(kind, chosen, known):
    unknown = [c for c in chosen or [] if c not in known]
    if unknown:
        raise TestbedError(f"unknown {kind} {', '.join(unknown)} (known: {', '.join(known)})")


def prepare_spec(opt):
    spec = load_spec(opt.topo, underlay=opt.underlay)
    if opt.mtu:
        if not 1280 <= opt.mtu <= 9000:
            raise TestbedError(f"--mtu {opt.mtu}: must be from 1280 to 9000")
        spec = dataclasses.replace(spec, mtu=opt.mtu)
    if opt.bandwidth or opt.delay:
        racks = tuple(dataclasses.replace(r, bandwidth=opt.bandwidth or r.bandwidth,
                                          delay=opt.delay or r.delay) for r in spec.racks)
        spec = dataclasses.replace(spec, racks=racks)
    return spec


def choose_modes(opt, spec, caps):
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


def paths_for(mode, chosen):
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


def measure_sample(measure, client, server, opt, mtu, daemons):
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


def cluster_name(mode):
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


def _flows(clusters, chosen, writer):
    """{bare path: (bare Flow, [mode Flows paired with it])} of every applicable path."""
    groups = {}
    bare = clusters[BARE]
    for path in paths_for(BARE, chosen):
        try:
            client, server = endpoints(path, bare.state)
        except NotApplicable as e:
            writer.skip(BARE, path.name, str(e))
            continue
        groups[path.name] = (Flow(BARE, path.name, client, server), [])
    for mode, cluster in clusters.items():
        if mode == BARE:
            continue
        for path in paths_for(mode, chosen):
            try:
                client, server = endpoints(path, cluster.state)
                if path.baseline not in groups:
                    raise NotApplicable(f"the bare underlay has no {path.baseline} path here")
            except NotApplicable as e:
                writer.skip(mode, path.name, str(e))
                continue
            groups[path.baseline][1].append(Flow(mode, path.name, client, server))
    return groups


# the run's A/A control: each bare path measured twice (AA_MODE against bare). Flannel's
# modes cross one datapath pod to pod on one node, but never at one pod MTU (1500, 1472,
# 1450), and on this kernel the MTU alone moves same-node TCP by about 9 %: no A/A pair.
AA_GROUPS = [(p.name, [AA_MODE]) for p in ALL_PATHS if p.kind == "node"]


def _estimate(measures, groups, opt):
    total = 0.0
    for measure in measures:
        for _bare, flows in groups.values():
            turns = 2 * len(flows) + 1
            if measure.sliced:
                total += _cycles(measure, opt) * turns * (opt.slice_ms / 1000 + 0.01)
            else:
                total += _cycles(measure, opt) * turns * (measure.seconds(opt) + TOOL_START_S)
    return total


def _cycles(measure, opt):
    return max(2, round((opt.slices if measure.sliced else opt.repeats) * measure.share))


def run(opt, progress_stream=None):
    """Run the benchmark; returns (run_dir, summary, skipped modes)."""
    _check_choice("path", opt.paths, list(PATHS))
    if opt.tests == ["all"]:
        opt.tests = list(MEASURES)
    _check_choice("test", opt.tests, list(MEASURES))
    spec = prepare_spec(opt)
    caps = doctor.capabilities()
    if opt.delay and not caps.get("netem"):
        raise TestbedError("--delay needs the kernel's netem qdisc, which this kernel lacks "
                           "(see `testbed doctor`): delay cannot be emulated on this machine")
    modes, skipped = choose_modes(opt, spec, caps)
    measures = [m for m in ALL_MEASURES if m.name in (opt.tests or DEFAULT_TESTS)]
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
    status, groups = "complete", {}
    try:
        with signals_interrupt(), contextlib.ExitStack() as stack:
            polling = stack.enter_context(idle_polling())
            writer.write_json("machine.json", {**machine_facts(REPO, datapaths, options),
                                               "topology": spec.path, "modes": modes,
                                               "skipped_modes": skipped, "design": DESIGN,
                                               "idle_cpus_poll": polling})
            clusters = _bring_up(stack, spec, modes, progress)
            groups = _flows(clusters, opt.paths, writer)
            progress.extend(_estimate(measures, groups, opt))
            if opt.warmup:
                progress.show("warm-up: every path")
                for bare_flow, flows in groups.values():
                    for flow in [bare_flow] + flows:
                        _warm_up(flow.client, flow.server)
            for measure in measures:
                for bare_flow, flows in groups.values():
                    if measure.name in AA_TESTS:  # the bare path again: an exact A/A pair
                        flows = flows + [dataclasses.replace(bare_flow, mode=AA_MODE)]
                    turns = []
                    try:
                        _run_test(measure, bare_flow, flows, clusters, opt, progress, turns)
                    finally:  # an interrupted session keeps the turns it measured
                        for sample in paired(turns, bare_flow):
                            writer.add({**sample, "test": measure.name})
    except (KeyboardInterrupt, Interrupted):
        status = "interrupted"
    finally:
        progress.close()
        summary = writer.finish(status, AA_GROUPS,
                                {p.name: p.baseline for p in ALL_PATHS if p.baseline})
    return run_dir, summary, skipped


def _run_test(measure, bare_flow, flows, clusters, opt, progress, turns):
    label = f"{measure.name}, {bare_flow.path} and the pod paths paired with it"
    if measure.sliced:
        progress.show(f"{label}: {_cycles(measure, opt)} cycles of {opt.slice_ms} ms turns")
        cycles = _cycles(measure, opt)
        until = (_settled(measure, bare_flow, cycles * MAX_CYCLES_FACTOR),
                 cycles * MAX_CYCLES_FACTOR) if measure.precise_to else None
        run_sliced(lambda all_flows: measure.session(all_flows, opt), flows, bare_flow,
                   cycles, opt.slice_ms / 1000, turns,
                   lambda s: progress.advance(s * 2 + 0.01), until)
        return

    def one(flow):
        cluster = clusters[BARE if flow.mode == AA_MODE else flow.mode]
        daemons = cluster.mode.daemons(cluster.context) if cluster.mode else {}
        mtu = cluster.state.pod_mtu or cluster.spec.mtu
        progress.show(f"{label}: {flow.mode} {flow.path}")
        out = _measure_once(measure, flow.client, flow.server, opt, mtu, daemons)
        progress.advance(measure.seconds(opt) + TOOL_START_S)
        return out
    run_sequential(flows, bare_flow, _cycles(measure, opt), one, turns)


def _settled(measure, bare_flow, max_cycles):
    """settled(flow, turns): no more turns for this flow, because its ratio to bare (the
    test's first metric) is known to within ± measure.precise_to, or because at the rate its
    interval narrows (1/sqrt(turns)) the target is out of reach within max_cycles."""
    metric = COMPARED[measure.name][0]

    def settled(flow, turns):
        samples = [{**s, "test": measure.name} for s in paired(turns, bare_flow)
                   if (s["mode"], s["path"]) == (flow.mode, flow.path)]
        logs = log_ratios(samples).get((flow.mode, flow.path, measure.name, metric), [])
        found = interval(logs)
        if not found:
            return True  # failing turns: more of them would not help
        width = max(found[2] / found[0], found[0] / found[1]) - 1
        needed = len(logs) * (width / measure.precise_to) ** 2
        return width <= measure.precise_to or needed > max_cycles
    return settled


def steal_fraction(metrics, seconds):
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


def newest_run(out="results"):
    runs = sorted(p for p in Path(out).glob("*/summary.json")) if os.path.isdir(out) else []
    if not runs:
        raise TestbedError(f"no benchmark run under {out}/ (run `testbed bench` first)")
    return runs[-1].parent
