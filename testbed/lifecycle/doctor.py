"""`testbed doctor`: what this machine offers, and what each missing piece prevents.

Kernel features are probed by really creating the object in a throw-away namespace (the
kernel's config may list a module that cannot load), except for the Open vSwitch datapath and
IPVS, which are read from the kernel config and /proc.
"""
import gzip
import importlib.util
import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass

from testbed import BUILD
from testbed.cni.caller import CNI_PATH

PROBE_NETNS = f"tb-doctor-{os.getpid()}"
SCTP = getattr(socket, "IPPROTO_SCTP", 132)


@dataclass
class Check:
    name: str
    kind: str        # "kernel" or "binary"
    ok: bool
    detail: str
    prevents: str    # what cannot work without it
    essential: bool = False


def _sh(*argv):
    return subprocess.run(argv, capture_output=True, text=True).returncode == 0


def _in_probe(*argv):
    return _sh("ip", "netns", "exec", PROBE_NETNS, *argv)


def _kernel_config():
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return f.read()
    except OSError:
        pass
    try:
        with open(f"/boot/config-{os.uname().release}") as f:
            return f.read()
    except OSError:
        return ""


def _config_has(config, symbol, sys_module):
    """True if built in, or a module that is loaded or present on disk."""
    if f"CONFIG_{symbol}=y" in config or os.path.isdir(f"/sys/module/{sys_module}"):
        return True
    if f"CONFIG_{symbol}=m" in config:
        return _sh("modprobe", "-n", sys_module)
    return False


def _probe_links():
    """Create each device type in a probe namespace; returns {feature: bool}."""
    found = {}
    _sh("ip", "netns", "add", PROBE_NETNS)
    try:
        p = ("ip", "-n", PROBE_NETNS, "link", "add")
        found["veth"] = _sh(*p, "pv0", "type", "veth", "peer", "name", "pv1")
        found["bridge"] = _sh(*p, "pbr0", "type", "bridge")
        found["vxlan"] = _sh(*p, "pvx0", "type", "vxlan", "id", "42", "dstport", "8472")
        found["ipip"] = _sh(*p, "pip0", "type", "ipip", "remote", "192.0.2.1")
        found["tun"] = _sh("ip", "-n", PROBE_NETNS, "tuntap", "add", "ptun0", "mode", "tun")
        found["htb"] = found["veth"] and _in_probe("tc", "qdisc", "add", "dev", "pv0", "root",
                                                   "handle", "1:", "htb")
        found["netem"] = found["veth"] and _in_probe("tc", "qdisc", "add", "dev", "pv1", "root",
                                                     "netem", "delay", "1ms")
        found["nftables"] = _in_probe("nft", "add", "table", "inet", "tbprobe")
        found["iptables"] = _in_probe("iptables", "-t", "nat", "-A", "POSTROUTING", "-j", "RETURN")
        # SCTP in connection tracking and NAT (what kube-proxy's SCTP rules need); the nat
        # rule above has loaded conntrack, whose per-protocol settings show what it tracks
        found["nf-sctp"] = (found["iptables"] or found["nftables"]) and _in_probe(
            "test", "-e", "/proc/sys/net/netfilter/nf_conntrack_sctp_timeout_established")
    finally:
        _sh("ip", "netns", "del", PROBE_NETNS)
    return found


# the BPF helpers the ebpf mode's tc programs call (bpftool feature probe, program type
# sched_cls), with what each one does for it
BPF_HELPERS = [
    ("bpf_redirect_peer", "delivery into a pod's namespace without the host stack"),
    ("bpf_redirect_neigh", "native routing out of eth0 with the neighbour resolved"),
    ("bpf_fib_lookup", "native routing by the kernel's FIB"),
    ("bpf_skb_set_tunnel_key", "tunnel routing (the peer node and the identity in the VNI)"),
    ("bpf_skb_get_tunnel_key", "tunnel routing (the source identity of what arrives)"),
    ("bpf_skb_change_type", "delivery of decapsulated packets"),
]


def _bpf_helpers():
    """{helper: available to tc programs?}; all False where bpftool or BPF is missing."""
    try:
        out = subprocess.run(["bpftool", "-j", "feature", "probe", "kernel"],
                             capture_output=True, text=True, timeout=20).stdout
        found = set(json.loads(out)["helpers"]["sched_cls_available_helpers"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        found = set()
    return {name: name in found for name, _ in BPF_HELPERS}


KERNEL = [
    # name, what it prevents when missing, essential
    ("veth", "everything: nodes, pods and links are veth pairs", True),
    ("bridge", "rack segments and cni0, so every mode", True),
    ("vxlan", "the vxlan mode and VXLAN tunnels of the openflow mode", False),
    ("tun", "the flannel udp mode (flannel0 is a TUN device)", False),
    ("ipip", "Calico IPIP encapsulation (the bgp mode itself needs no IPIP)", False),
    ("openvswitch", "the OVS kernel datapath: OVS runs with the slow userspace datapath", False),
    ("htb", "underlay bandwidth caps (bandwidth: in a topology)", False),
    ("netem", "emulated delay and loss (bench --delay)", False),
    ("ipvs", "kube-proxy IPVS mode (kubeProxy: {mode: ipvs})", False),
    ("nftables", "kube-proxy nftables mode and NetworkPolicy enforcement", False),
    ("iptables", "kube-proxy iptables mode (and the IPVS mode's few rules)", False),
    ("nf-sctp", "SCTP Service ports (kube-proxy's rules need SCTP in conntrack and NAT)", False),
    ("sctp", "SCTP sockets in pods (agnhost porter SERVE_SCTP_PORT_n, connect "
     "--protocol=sctp); SCTP in NetworkPolicy is enforced without it", False),
] + [(name, f"the ebpf mode: {does}", False) for name, does in BPF_HELPERS]

BINARIES = [
    ("mnexec", "Mininet nodes: no cluster can start", True),
    ("nsenter", "running CNI plugins and commands inside nodes", True),
    ("ip", "every network object (iproute2)", True),
    ("ovs-vswitchd", "OVS rack switches and the openflow mode", False),
    ("ovsdb-server", "OVS rack switches and the openflow mode", False),
    ("ovs-vsctl", "OVS rack switches and the openflow mode", False),
    ("ovs-ofctl", "OVS rack switches, the openflow mode and `testbed flows`", False),
    ("bird", "the Calico-style bgp mode (BIRD 2)", False),
    ("birdc", "the Calico-style bgp mode (BIRD's control client)", False),
    ("ipvsadm", "kube-proxy IPVS mode (IPVS virtual servers)", False),
    ("ipset", "kube-proxy IPVS mode (its address sets)", False),
    ("nsd", "cluster DNS (the kube-dns add-on that comes with manifests)", False),
    ("dig", "checking that cluster DNS answers (dnsutils)", False),
    ("iperf3", "throughput benchmarks", False),
    ("sockperf", "latency benchmarks with sockperf", False),
    ("ping", "reachability checks and ICMP RTT", False),
    ("flannel-udp-forwarder", "the flannel udp mode (built by scripts/install.sh)", False),
    ("bpftool", "the ebpf mode (loads its programs, writes its maps) and `testbed bpf`", False),
]
BUILT_FILES = [
    ("bpf/datapath.o", "the ebpf mode's programs (compiled by scripts/install.sh with clang)"),
]

PYTHON_MODULES = [
    ("os-ken", "os_ken", "the OpenFlow controller of the OVS underlay and the openflow mode",
     False),
]

CNI_PLUGINS = [
    ("bridge", "pods of the flannel modes (cni0)", True),
    ("host-local", "pod addresses of the flannel modes", True),
    ("loopback", "nothing yet (lo is brought up directly)", False),
    ("testbed-calico", "pods of the bgp mode (the testbed's plugin, made by install.sh)", False),
    ("testbed-ovs", "pods of the openflow mode (the testbed's plugin, made by install.sh)", False),
    ("testbed-cilium", "pods of the ebpf mode (the testbed's plugin, made by install.sh)",
     False),
]


def _built(name):
    """A program the install step compiled into the repository's build/ directory."""
    path = str(BUILD / name)
    return path if os.access(path, os.X_OK) else None


def _sctp_sockets():
    """Can a process open an SCTP socket (the kernel's sctp module)?"""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, SCTP).close()
        return True
    except OSError:
        return False


def run_checks() -> list[Check]:
    probed = _probe_links()
    config = _kernel_config()
    probed["openvswitch"] = _config_has(config, "OPENVSWITCH", "openvswitch")
    probed["ipvs"] = os.path.exists("/proc/net/ip_vs") or _config_has(config, "IP_VS", "ip_vs")
    probed["sctp"] = _sctp_sockets()
    probed.update(_bpf_helpers())
    checks = []
    for name, prevents, essential in KERNEL:
        ok = probed.get(name, False)
        checks.append(Check(name, "kernel", ok, "present" if ok else "missing", prevents,
                            essential))
    for name, prevents, essential in BINARIES:
        path = _built(name) or shutil.which(name)
        checks.append(Check(name, "binary", bool(path), path or "not found", prevents, essential))
    for name, prevents in BUILT_FILES:
        path = str(BUILD / name)
        found = os.path.isfile(path)
        checks.append(Check(name, "binary", found, path if found else "not built", prevents))
    for name, module, prevents, essential in PYTHON_MODULES:
        found = importlib.util.find_spec(module)
        checks.append(Check(name, "binary", found is not None,
                            found.origin if found else "not installed", prevents, essential))
    for name, prevents, essential in CNI_PLUGINS:
        path = next((os.path.join(d, name) for d in CNI_PATH
                     if os.access(os.path.join(d, name), os.X_OK)), None)
        checks.append(Check(f"cni/{name}", "binary", bool(path), path or "not found", prevents,
                            essential))
    return checks


def capabilities(checks: list[Check] | None = None) -> dict[str, bool]:
    """{feature or binary name: present?} for modes and tests to consult."""
    return {c.name: c.ok for c in (checks or run_checks())}


def missing_for(required: tuple | list, caps: dict[str, bool]) -> list[str]:
    return [name for name in required if not caps.get(name, False)]


def render(checks: list[Check]) -> str:
    lines = []
    for kind, title in (("kernel", "Kernel features"), ("binary", "Programs")):
        lines.append(title)
        for c in (c for c in checks if c.kind == kind):
            mark = "ok  " if c.ok else ("FAIL" if c.essential else "--  ")
            line = f"  [{mark}] {c.name:<22} {c.detail}"
            if not c.ok:
                line += f"\n         without it: {c.prevents}"
            lines.append(line)
    return "\n".join(lines)
