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
from testbed.host.probes import SHARED, Probe
from testbed.modes import probes as mode_probes

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


def _bpf_helpers(names):
    """{helper: available to tc programs?}; all False where bpftool or BPF is missing."""
    try:
        out = subprocess.run(["bpftool", "-j", "feature", "probe", "kernel"],
                             capture_output=True, text=True, timeout=20).stdout
        found = set(json.loads(out)["helpers"]["sched_cls_available_helpers"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        found = set()
    return {name: name in found for name in names}


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


def all_probes() -> list[Probe]:
    """The shared probes, then every mode's own (its programs, files, helpers, plugins)."""
    return list(SHARED) + mode_probes()


def _kernel_features(probes):
    probed = _probe_links()
    config = _kernel_config()
    probed["openvswitch"] = _config_has(config, "OPENVSWITCH", "openvswitch")
    probed["ipvs"] = os.path.exists("/proc/net/ip_vs") or _config_has(config, "IP_VS", "ip_vs")
    probed["sctp"] = _sctp_sockets()
    probed.update(_bpf_helpers([p.name for p in probes if p.kind == "bpf-helper"]))
    return probed


def _look(probe, kernel):
    """(found?, detail) of one probe; kernel: the features probed at once."""
    target = probe.target or probe.name
    if probe.kind in ("kernel", "bpf-helper"):
        ok = kernel.get(probe.name, False)
        return ok, "present" if ok else "missing"
    if probe.kind == "binary":
        path = _built(target) or shutil.which(target)
        return bool(path), path or "not found"
    if probe.kind == "built":
        path = str(BUILD / target)
        return os.path.isfile(path), path if os.path.isfile(path) else "not built"
    if probe.kind == "python":
        found = importlib.util.find_spec(target)
        return found is not None, found.origin if found else "not installed"
    path = next((os.path.join(d, target) for d in CNI_PATH
                 if os.access(os.path.join(d, target), os.X_OK)), None)
    return bool(path), path or "not found"


def run_checks() -> list[Check]:
    probes = all_probes()
    kernel = _kernel_features(probes)
    checks = []
    for probe in probes:
        ok, detail = _look(probe, kernel)
        kind = "kernel" if probe.kind in ("kernel", "bpf-helper") else "binary"
        checks.append(Check(probe.name, kind, ok, detail, probe.prevents, probe.essential))
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
