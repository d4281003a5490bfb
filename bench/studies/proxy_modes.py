"""kube-proxy's modes side by side: iptables, nftables and userspace (and ipvs where the kernel
has it), one ClusterIP in front of one pod.

One vxlan cluster per mode runs at once (default.yaml); rounds go mode after mode, and in each
cluster the direct path (pod to pod) and the ClusterIP path alternate, so that the machine's
drift falls on every mode and path alike. Per round and path: connect latency (TCP connect
until the server's first byte, a block of connections) and a TCP transfer with iperf3 with the
machine's busy CPU seconds meanwhile (CPU per GB moved). Printed: medians with a 95 %
interval over rounds, the ClusterIP path as a ratio of the same cluster's direct path, and the
direct path's spread across clusters as the A/A noise floor (the same path, measured in
three clusters). Asserts nothing. Needs root.

    python -m bench.studies.proxy_modes [--modes iptables,nftables,userspace] [--rounds 5]
                                [--seconds 3] [--conns 100]
"""
import argparse
import statistics
import sys
from contextlib import ExitStack

from bench.engine.cpu import machine_busy_seconds
from bench.engine.stats import median_ci
from bench.studies.services import CLIENT, PORT, SERVER, wait_for_server
from bench.tools import iperf3
from testbed.api import apply
from testbed.host import netns
from testbed.kubeproxy.modes import get_proxy_mode, proxy_mode_names
from testbed.lifecycle import doctor
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.manifests import kinds


def manifest() -> kinds.Manifests:
    """On node2: the one-byte server (PORT) and iperf3's (5201), behind one Service each."""
    echo = kinds.Container("echo", "busybox", ("python3", "-c", SERVER))
    objects = [kinds.Namespace("bench", {}, "bench"),
               kinds.Pod("echo", "bench", kinds.PodTemplate({"app": "echo"}, (echo,), "node2"),
                         "bench")]
    for name, port in (("echo", PORT), ("iperf", iperf3.PORT)):
        objects.append(kinds.Service(name, "bench", "ClusterIP", {"app": "echo"},
                                     (kinds.ServicePort(port, port),), source="bench"))
    return kinds.Manifests(objects, [])


class Setup:
    """One mode's cluster and what the measures need of it."""

    def __init__(self, mode: str, cluster: Cluster):
        self.mode = mode
        state = cluster.state
        self.client = state.pods["default/node1-pod1"].netns
        self.server = state.pods["bench/echo"].netns
        self.targets = {"direct": state.pods["bench/echo"].ip,
                        "service": state.services["bench/echo"].cluster_ip}
        self.iperf_targets = {"direct": self.targets["direct"],
                              "service": state.services["bench/iperf"].cluster_ip}
        self.samples = {path: {"connect": [], "gbps": [], "cpu_per_gb": []}
                        for path in self.targets}

    def measure(self, conns: int, seconds: float) -> None:
        for path in ("direct", "service"):
            out = netns.run(netns.in_pod(self.client, ["python3", "-c", CLIENT,
                                                       self.targets[path], str(conns)]))
            self.samples[path]["connect"].append(statistics.median(float(x)
                                                                   for x in out.split()))
            busy = machine_busy_seconds()
            result = iperf3.tcp(lambda cmd: netns.in_pod(self.server, cmd),
                                lambda cmd: netns.in_pod(self.client, cmd),
                                self.iperf_targets[path], seconds)
            spent = machine_busy_seconds() - busy
            self.samples[path]["gbps"].append(result["gbps"])
            self.samples[path]["cpu_per_gb"].append(spent / (result["bytes"] / 1e9))


def summary(values: list[float], digits: int = 1) -> str:
    low, high, _cov = median_ci(values)
    return f"{statistics.median(values):8.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def report(setups: list[Setup]) -> None:
    print("\nmedian over rounds [95 % interval]; ratio: ClusterIP / direct in the same cluster")
    print(f"{'mode':<10} {'path':<8} {'connect µs':>22} {'Gbit/s':>22} {'CPU s/GB':>22}")
    for s in setups:
        for path in ("direct", "service"):
            row = s.samples[path]
            print(f"{s.mode:<10} {path:<8} {summary(row['connect']):>22} "
                  f"{summary(row['gbps'], 2):>22} {summary(row['cpu_per_gb'], 2):>22}")
        ratios = []
        for key in ("connect", "gbps", "cpu_per_gb"):
            ratio = statistics.median(s.samples["service"][key]) / \
                statistics.median(s.samples["direct"][key])
            ratios.append(f"{key} x{ratio:.2f}")
        print(f"{'':<10} {'ratio':<8} " + "   ".join(ratios))
    direct = [statistics.median(s.samples["direct"]["connect"]) for s in setups]
    gbps = [statistics.median(s.samples["direct"]["gbps"]) for s in setups]
    if len(setups) > 1:
        print(f"A/A (the direct path across the clusters): connect {min(direct):.1f}-"
              f"{max(direct):.1f} µs ({(max(direct) / min(direct) - 1) * 100:.0f} %), "
              f"{min(gbps):.2f}-{max(gbps):.2f} Gbit/s "
              f"({(max(gbps) / min(gbps) - 1) * 100:.0f} %)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="iptables,nftables,userspace")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="per iperf3 transfer")
    parser.add_argument("--conns", type=int, default=100, help="connections per block")
    parser.add_argument("--topo", default="topologies/default.yaml")
    args = parser.parse_args(argv)
    caps = doctor.capabilities()
    modes = []
    for mode in args.modes.split(","):
        if mode not in proxy_mode_names():
            parser.error(f"--modes: {mode!r} is not one of {', '.join(proxy_mode_names())}")
        missing = doctor.missing_for(tuple(get_proxy_mode(mode).needs), caps)
        if missing:
            print(f"{mode}: skipped, this machine lacks {', '.join(missing)}")
        else:
            modes.append(mode)
    with ExitStack() as stack:
        setups = []
        for mode in modes:
            spec = load_spec(args.topo, f"kp-{mode[:4]}", proxy_mode=mode)
            cluster = stack.enter_context(Cluster.create(spec, "vxlan"))
            apply.apply(cluster, manifest())
            setup = Setup(mode, cluster)
            for target in setup.targets.values():
                wait_for_server(setup.client, target)
            setups.append(setup)
        for number in range(1, args.rounds + 1):
            for setup in setups:
                setup.measure(args.conns, args.seconds)
            print(f"round {number}/{args.rounds} done", flush=True)
        report(setups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
