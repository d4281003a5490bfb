"""Running commands in the root namespace, in a node (by its shell's PID) or in a pod (by name)."""
import ctypes
import ipaddress
import json
import os
import socket
import subprocess
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from testbed.errors import CommandError

NETNS_DIR = "/run/netns"


def run(argv: Sequence[object], input: str | None = None, env: dict[str, str] | None = None,
        check: bool = True, timeout: float = 60) -> str:
    """Run argv; return stdout. On failure raise CommandError with the command's own words."""
    args = [str(a) for a in argv]
    proc = subprocess.run(args, input=input, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stderr or proc.stdout)
    return proc.stdout


def in_node(pid: int, argv: Sequence[object]) -> list[str]:
    """argv prefixed to run in the network namespace of a node's shell."""
    return ["nsenter", "-t", str(pid), "-n", "--"] + [str(a) for a in argv]


def in_pod(netns: str, argv: Sequence[object]) -> list[str]:
    return ["ip", "netns", "exec", netns] + [str(a) for a in argv]


def netns_path(name: str) -> str:
    return f"{NETNS_DIR}/{name}"


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in(path: str, family: int = socket.AF_INET,
              kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket in the network namespace at `path` (/run/netns/NAME or /proc/PID/ns/net),
    made by this thread stepping into it and straight back: a socket belongs to the namespace
    it was created in, whichever thread then uses it, so no process is spawned for it."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            return socket.socket(family, kind)
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def namespace_id(path: str) -> int | None:
    """The inode naming a network namespace (of a /run/netns file or /proc/PID/ns/net)."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def processes_in_any(ns_ids: Collection[int | None]) -> dict[int, list[int]]:
    """{ns_id: [PIDs]} of the processes in any of the given namespaces: one pass over /proc."""
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ns_id = os.stat(f"/proc/{entry}/ns/net").st_ino
            except OSError:  # gone meanwhile
                continue
            if ns_id in ns_ids:
                found.setdefault(ns_id, []).append(int(entry))
    return found


def delete_named(names: Collection[str]) -> None:
    """`ip netns del` of many names with one `ip` (-force: one failure stops nothing)."""
    if names:
        run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in names),
            check=False)


def outside_holders(names: Iterable[str]) -> dict[str, list[int]]:
    """{name: [pid, ...]} of the named namespaces that a process holds open as a file (say
    /run/netns/NAME on one of its descriptors): deleting the name would not end such a
    namespace, which would live on unrecorded. One pass over /proc for all the names."""
    wanted = {}
    for name in names:
        ns_id = namespace_id(netns_path(name))
        if ns_id is not None:  # a descriptor reads as the file opened, or as the namespace
            wanted[f"net:[{ns_id}]"] = name
            wanted[netns_path(name)] = name
    found: dict[str, list[int]] = {}
    if not wanted:
        return found
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            if target in wanted:
                found.setdefault(wanted[target], []).append(int(entry))
    return found


def describe_holders(name: str, pids: list[int]) -> str:
    """Words for a namespace held open by processes the testbed did not start."""
    shown = []
    for pid in pids[:3]:
        try:
            with open(f"/proc/{pid}/comm") as f:
                shown.append(f"{pid} ({f.read().strip()})")
        except OSError:
            shown.append(str(pid))
    return (f"netns {name} is held open by pid {', '.join(shown)}, which the testbed did not "
            "start: left in place")


def netns_list() -> list[str]:
    """Names of the named network namespaces, as `ip netns list` shows them. Read from the
    directory: `ip netns list` looks up every namespace's id, which with a thousand pods
    costs more than the bring-up step that asks."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def routed_networks(pid: int) -> set[str]:
    """The networks ("10.244.1.0/24", "fd00:10:244:1::/122") the main routing tables of
    PID's network namespace send somewhere (blackhole and unreachable routes left out), read
    from /proc/PID/net/route and ipv6_route without starting a process: cheap enough to poll
    hundreds of nodes."""
    out = set()
    with open(f"/proc/{pid}/net/route") as f:
        next(f)  # the heading
        for line in f:
            fields = line.split()
            if int(fields[3], 16) & RTF_REJECT:
                continue
            dst = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            out.add(str(ipaddress.IPv4Network(f"{dst}/{mask}")))
    try:
        with open(f"/proc/{pid}/net/ipv6_route") as f:
            # dst, its length, src, its length, next hop, metric, refs, use, flags, device
            for line in f:
                fields = line.split()
                if int(fields[8], 16) & RTF_REJECT or fields[9] == "lo":
                    continue  # blackholes, and the kernel's local routes
                dst6 = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
                out.add(str(ipaddress.IPv6Network(f"{dst6}/{int(fields[1], 16)}")))
    except FileNotFoundError:  # a kernel without IPv6
        pass
    return out


RTF_REJECT = 0x0200  # the flag /proc/net/route shows for blackhole, unreachable, prohibit


class Namespace:
    """A network namespace commands can be run in: a node (by PID) or a pod (by name)."""

    def __init__(self, label: str, wrap: Callable[[list], list[str]], pid: int | None = None):
        self.label = label
        self.wrap = wrap
        self.pid = pid  # of a process inside it (a node's shell), where there is one

    def argv(self, *argv: object) -> list[str]:
        return self.wrap(list(argv))

    def run(self, *argv: object, **kwargs: Any) -> str:
        return run(self.wrap(list(argv)), **kwargs)

    def batch(self, tool: str, lines: list[str]) -> None:
        """Many commands of `ip` or `bridge` (one per line, without the tool's name) in one
        process: `TOOL -batch -`. Stops at the first failing line, naming it."""
        if lines:
            self.run(tool, "-batch", "-", input="".join(f"{line}\n" for line in lines))

    def routed_networks(self) -> set[str]:
        """routed_networks() of this namespace: from /proc when a process in it is known,
        else from `ip route` (a pinned namespace of an adopted cluster)."""
        if self.pid is not None:
            return routed_networks(self.pid)
        return {r["dst"] if "/" in r["dst"] else f"{r['dst']}/{bits}"
                for family, bits in (("-4", 32), ("-6", 128))
                for r in self.ip_json(family, "route", "show")
                if r.get("type", "unicast") == "unicast" and r["dst"] != "default"}

    def ip_json(self, *args: str) -> Any:
        """`ip -j -d ARGS` in this namespace, parsed."""
        out = self.run("ip", "-j", "-d", *args)
        return json.loads(out) if out.strip() else []


def node_namespace(name: str, pid: int) -> Namespace:
    return Namespace(name, lambda argv: in_node(pid, argv), pid)


def pod_namespace(name: str) -> Namespace:
    return Namespace(name, lambda argv: in_pod(name, argv))
