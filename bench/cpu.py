"""CPU time spent while a test runs: the whole machine's, and named daemons' own."""
import os

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_line():
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def steal_seconds():
    """CPU time the hypervisor gave to others while we wanted it: a sample's noise gauge."""
    return _cpu_line()[7] / TICK


def machine_busy_seconds():
    """Busy CPU seconds of all cores since boot (user, nice, system, irq, softirq, steal).

    Packet processing of veth, bridges and tunnels happens in softirq on whichever core, in
    no process of ours, so only the machine-wide count captures the cost of a datapath.
    """
    fields = _cpu_line()
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def process_seconds(pid):
    """utime + stime of one process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


class CpuMeter:
    """Measures busy seconds between start() and stop(), machine-wide and per daemon."""

    def __init__(self, daemons=None):
        self.daemons = dict(daemons or {})  # label -> pid

    def start(self):
        self.machine0 = machine_busy_seconds()
        self.steal0 = steal_seconds()
        self.daemon0 = {label: process_seconds(pid) for label, pid in self.daemons.items()}
        return self

    def stop(self):
        out = {"machine": machine_busy_seconds() - self.machine0,
               "steal": steal_seconds() - self.steal0, "daemons": {}}
        for label, pid in self.daemons.items():
            now, then = process_seconds(pid), self.daemon0.get(label)
            if now is not None and then is not None:
                out["daemons"][label] = now - then
        return out
