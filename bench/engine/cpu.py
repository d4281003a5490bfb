"""CPU time spent while a test runs: the whole machine's, and named daemons' own; and the
idle state the benchmark holds the CPUs in."""
import contextlib
import os
import signal
import struct
import subprocess
from collections.abc import Iterable, Iterator, Sequence

TICK = os.sysconf("SC_CLK_TCK")
# whole tool runs: client on core 0, server on core 1 where there are two cores (iperf3 -A)
PINNED_CPUS = (0, 1) if (os.cpu_count() or 1) >= 2 else None
STEAL_LIMIT = 0.02  # share of CPU time the hypervisor took that flags a sample as disturbed


def session_cpus(session: int) -> tuple[int, int] | None:
    """(client CPU, server CPU) of a time-sliced session: always on two different CPUs (the
    placement a pod pair on two nodes has, and the one that keeps the two ends from taking
    turns on one CPU), the two swapped from one session to the next so that a difference
    between the vCPUs is spread over every flow alike; None on a single CPU."""
    if not PINNED_CPUS:
        return None
    client, server = PINNED_CPUS
    return (client, server) if session % 2 else (server, client)


DAEMON_PATTERNS = 4  # all on CPU 0, all on CPU 1, nodes split one way, split the other way


def daemon_cpus(labels: Iterable[str], session: int) -> dict[str, int]:
    """{daemon label: CPU} for a mode's daemons in a time-sliced session, or {} on one CPU.

    Where a datapath daemon runs (flannel udp's forwarders, ovs-vswitchd) relative to the
    client, the server and the other node's daemon moves a round trip through it by 20-40 %
    (docs/benchmarks.md); left to the scheduler, the mix of placements a run happens to get
    moves its ratios from one run to the next. So every run takes the same mix: sessions
    1-2 put every daemon on CPU 0, 3-4 on CPU 1, 5-6 each node's daemons on the CPU of the
    node's position (first node 0, second 1, ...), 7-8 the other way; with the client and
    server swapped from one session to the next (session_cpus), eight sessions take each
    combination once. Labels are `<daemon>@<node>`; a daemon of no node (an OpenFlow
    controller) goes with the first node."""
    if not PINNED_CPUS:
        return {}
    pattern = (session - 1) // 2 % DAEMON_PATTERNS
    nodes = sorted({label.partition("@")[2] for label in labels})
    out = {}
    for label in labels:
        node = label.partition("@")[2]
        position = nodes.index(node) if node in nodes else 0
        out[label] = PINNED_CPUS[{0: 0, 1: 1, 2: position % 2, 3: (position + 1) % 2}[pattern]]
    return out


def place(pids: dict[str, int], cpus: dict[str, int] | None) -> None:
    """Pin every thread of each process {label: pid} to the CPU `cpus` gives its label, or let
    it run anywhere when cpus is None; a process already gone is left alone."""
    anywhere = set(range(os.cpu_count() or 1))
    for label, pid in pids.items():
        allowed = anywhere if cpus is None else {cpus[label]}
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                os.sched_setaffinity(int(tid), allowed)
            except (ProcessLookupError, FileNotFoundError):
                pass


def _cpu_line() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def steal_seconds() -> float:
    """CPU time the hypervisor gave to others while we wanted it: a sample's noise gauge."""
    return _cpu_line()[7] / TICK


def disturbed(stolen: float, seconds: float) -> bool:
    """Whether the hypervisor took more than STEAL_LIMIT of the machine during `seconds`."""
    return stolen > STEAL_LIMIT * seconds * (os.cpu_count() or 1)


class TurnMeter:
    """Machine-wide busy CPU and steal during one time-sliced turn."""

    def __init__(self) -> None:
        self.busy0, self.steal0 = machine_busy_seconds(), steal_seconds()

    def turn(self, metrics: dict, seconds: float) -> dict:
        """A measured turn's record: its metrics with the CPU the machine spent meanwhile."""
        stolen = steal_seconds() - self.steal0
        return {"ok": True, "error": None, "seconds": seconds,
                "disturbed": disturbed(stolen, seconds),
                "metrics": {**metrics, "cpu_s": machine_busy_seconds() - self.busy0,
                            "steal_s": stolen}}


def end_stopped(procs: Iterable[subprocess.Popen]) -> None:
    """Kill processes of ours that may be stopped (SIGSTOP), and reap them."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            except ProcessLookupError:
                pass
        proc.wait()


def machine_busy_seconds() -> float:
    """Busy CPU seconds of all cores since boot (user, nice, system, irq, softirq, steal).

    Packet processing of veth, bridges and tunnels happens in softirq on whichever core, in
    no process of ours, so only the machine-wide count captures the cost of a datapath.
    """
    fields = _cpu_line()
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 on), or None once the
    process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_seconds(pid: int) -> float | None:
    """utime + stime of one process, or None once it is gone."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else None


def last_cpu(pid: int) -> int | None:
    """The CPU a process last ran on (field 39 of /proc/<pid>/stat), or None once it is gone."""
    fields = _stat_fields(pid)
    return int(fields[36]) if fields else None


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """argv run on `cpu` (taskset), or as it is when cpu is None."""
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)


class CpuMeter:
    """Measures busy seconds between start() and stop(), machine-wide and per daemon."""

    def __init__(self, daemons: dict[str, int] | None = None):
        self.daemons = dict(daemons or {})  # label -> pid

    def start(self) -> "CpuMeter":
        self.machine0 = machine_busy_seconds()
        self.steal0 = steal_seconds()
        self.daemon0 = {label: process_seconds(pid) for label, pid in self.daemons.items()}
        return self

    def stop(self) -> dict:
        out: dict = {"machine": machine_busy_seconds() - self.machine0,
               "steal": steal_seconds() - self.steal0, "daemons": {}}
        for label, pid in self.daemons.items():
            now, then = process_seconds(pid), self.daemon0.get(label)
            if now is not None and then is not None:
                out["daemons"][label] = now - then
        return out


PM_QOS = "/dev/cpu_dma_latency"


@contextlib.contextmanager
def idle_polling() -> Iterator[bool]:
    """Keep idle CPUs polling instead of halting while the block runs; yields whether it could.

    On a virtual machine a halted vCPU is woken by the hypervisor, which here adds 40-50 µs to
    every wake-up of a process on the other vCPU and varies from moment to moment: a round trip
    between two vCPUs took 96-127 µs halting and 19-22 µs polling (16-22 µs on one vCPU).
    Latency benchmarks hold this PM QoS request (tuned's latency-performance profile does);
    the kernel drops it when the file is closed, so nothing outlives the run.
    """
    try:
        fd = os.open(PM_QOS, os.O_WRONLY)
    except OSError:
        yield False
        return
    try:
        os.write(fd, struct.pack("i", 0))  # 0 µs of exit latency allowed: only polling
        yield True
    finally:
        os.close(fd)
