"""What `testbed doctor` can look for: a Probe names one kernel feature, program, compiled
file, Python module, CNI plugin or BPF helper, and says what cannot work without it. The
probes every cluster needs are listed here; a mode declares its own beside it (Mode.probes),
and its `requires` may name only probes that exist (checked when it registers)."""
from dataclasses import dataclass

# how doctor looks for each kind: creating the object in a throw-away namespace (kernel), the
# PATH or build/ (binary), build/ (built), an import spec (python), CNI_PATH (cni), bpftool's
# probe of tc programs (bpf-helper)
KINDS = ("kernel", "binary", "built", "python", "cni", "bpf-helper")


@dataclass(frozen=True)
class Probe:
    name: str          # as capabilities and Mode.requires name it ("cni/<plugin>" for a plugin)
    kind: str          # one of KINDS
    prevents: str      # what cannot work without it
    essential: bool = False
    target: str = ""   # what is looked for when it is not the name (a Python module's name)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"probe {self.name}: kind {self.kind!r} is not one of {KINDS}")


def cni_plugin(plugin: str, prevents: str, essential: bool = False) -> Probe:
    return Probe(f"cni/{plugin}", "cni", prevents, essential, target=plugin)


SHARED = (
    Probe("veth", "kernel", "everything: nodes, pods and links are veth pairs", True),
    Probe("bridge", "kernel", "rack segments and cni0, so every mode", True),
    Probe("vxlan", "kernel", "the vxlan mode and VXLAN tunnels of the openflow mode"),
    Probe("tun", "kernel", "the flannel udp mode (flannel0 is a TUN device)"),
    Probe("ipip", "kernel", "Calico IPIP encapsulation (the bgp mode itself needs no IPIP)"),
    Probe("openvswitch", "kernel",
          "the OVS kernel datapath: OVS runs with the slow userspace datapath"),
    Probe("htb", "kernel", "underlay bandwidth caps (bandwidth: in a topology)"),
    Probe("netem", "kernel", "emulated delay and loss (bench --delay)"),
    Probe("ipvs", "kernel", "kube-proxy IPVS mode (kubeProxy: {mode: ipvs})"),
    Probe("nftables", "kernel", "kube-proxy nftables mode and NetworkPolicy enforcement"),
    Probe("iptables", "kernel", "kube-proxy iptables mode (and the IPVS mode's few rules)"),
    Probe("nf-sctp", "kernel",
          "SCTP Service ports (kube-proxy's rules need SCTP in conntrack and NAT)"),
    Probe("sctp", "kernel", "SCTP sockets in pods (agnhost porter SERVE_SCTP_PORT_n, connect "
          "--protocol=sctp); SCTP in NetworkPolicy is enforced without it"),
    Probe("mnexec", "binary", "Mininet nodes: no cluster can start", True),
    Probe("nsenter", "binary", "running CNI plugins and commands inside nodes", True),
    Probe("ip", "binary", "every network object (iproute2)", True),
    Probe("ovs-vswitchd", "binary", "OVS rack switches and the openflow mode"),
    Probe("ovsdb-server", "binary", "OVS rack switches and the openflow mode"),
    Probe("ovs-vsctl", "binary", "OVS rack switches and the openflow mode"),
    Probe("ovs-ofctl", "binary", "OVS rack switches, the openflow mode and `testbed flows`"),
    Probe("ipvsadm", "binary", "kube-proxy IPVS mode (IPVS virtual servers)"),
    Probe("ipset", "binary", "kube-proxy IPVS mode (its address sets)"),
    Probe("nsd", "binary", "cluster DNS (the kube-dns add-on that comes with manifests)"),
    Probe("dig", "binary", "checking that cluster DNS answers (dnsutils)"),
    Probe("iperf3", "binary", "throughput benchmarks"),
    Probe("sockperf", "binary", "latency benchmarks with sockperf"),
    Probe("ping", "binary", "reachability checks and ICMP RTT"),
    Probe("os-ken", "python", "the OpenFlow controller of the OVS underlay and the openflow mode",
          target="os_ken"),
    cni_plugin("bridge", "pods of the flannel modes (cni0)", True),
    cni_plugin("host-local", "pod addresses of the flannel modes", True),
    cni_plugin("loopback", "nothing yet (lo is brought up directly)"),
)
