"""What the testbed's own CNI plugins share (CNI spec 1.0): errors as the spec codes them, the
checks of the configuration and environment every command needs, running commands in the
node or the pod, and the dispatch of ADD, DEL, CHECK and VERSION."""
from __future__ import annotations  # annotations unevaluated: a plugin loads no typing

import json
import os
import sys

from testbed.cni import spawn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TextIO

CNI_VERSION = "1.0.0"
SUPPORTED = ["0.4.0", "1.0.0"]

# CNI spec error codes
INCOMPATIBLE_VERSION, UNKNOWN_CONTAINER, INVALID_ENV, IO_FAILURE, DECODE_FAILURE, \
    INVALID_CONFIG, TRY_AGAIN = 1, 3, 4, 5, 6, 7, 11


class PluginError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def parse_cni_args(text: str | None) -> dict[str, str]:
    out = {}
    for item in (text or "").split(";"):
        if "=" in item:
            key, value = item.split("=", 1)
            out[key] = value
    return out


def load_json_config(text: str) -> dict:
    """The configuration as a dict, with a supported cniVersion and a sane mtu."""
    try:
        conf = json.loads(text)
    except ValueError as e:
        raise PluginError(DECODE_FAILURE, "network configuration is not JSON", str(e))
    if not isinstance(conf, dict):
        raise PluginError(DECODE_FAILURE, "network configuration is not a JSON object")
    version = conf.get("cniVersion")
    if version not in SUPPORTED:
        raise PluginError(INCOMPATIBLE_VERSION, f"cniVersion {version!r} is not supported",
                          f"supported: {', '.join(SUPPORTED)}")
    mtu = conf.get("mtu", 1500)
    if not isinstance(mtu, int) or not 576 <= mtu <= 9000:
        raise PluginError(INVALID_CONFIG, f"mtu {mtu!r} must be an integer from 576 to 9000")
    return conf


def pod_environment(env: Mapping[str, str], command: str) -> dict[str, str]:
    """The CNI_* variables a command needs, and the pod's namespace and name from CNI_ARGS."""
    missing = [k for k in ("CNI_CONTAINERID", "CNI_IFNAME") if not env.get(k)]
    if command in ("ADD", "CHECK") and not env.get("CNI_NETNS"):
        missing.append("CNI_NETNS")
    if missing:
        raise PluginError(INVALID_ENV, f"missing environment variable {', '.join(missing)}")
    args = parse_cni_args(env.get("CNI_ARGS"))
    return {"id": env["CNI_CONTAINERID"], "ifname": env["CNI_IFNAME"],
            "netns": env.get("CNI_NETNS", ""),
            "namespace": args.get("K8S_POD_NAMESPACE", "default"),
            "pod": args.get("K8S_POD_NAME", env["CNI_CONTAINERID"])}


def sh(*argv: object, netns: str | None = None, input: str | None = None) -> str:
    """Run a command here (the node) or, with netns=PATH, in the pod's namespace."""
    args = [str(a) for a in argv]
    if netns:
        args = ["nsenter", f"--net={netns}", "--"] + args
    proc = spawn.run(args, input)
    if proc.returncode != 0:
        raise PluginError(IO_FAILURE, f"{' '.join(args)} failed", proc.stderr.strip())
    return proc.stdout


def ip_batch(lines: list[str], netns: str | None = None) -> None:
    """Several `ip` commands (one per line, without "ip") in one process, in order: a plugin
    run per pod pays for each process it starts. The first failing line stops the rest."""
    sh("ip", "-batch", "-", netns=netns, input="".join(f"{line}\n" for line in lines))


def link_json(name: str, netns: str | None = None) -> dict | None:
    out = spawn.run((["nsenter", f"--net={netns}", "--"] if netns else []) +
                    ["ip", "-j", "link", "show", name])
    return json.loads(out.stdout)[0] if out.returncode == 0 and out.stdout.strip() else None


def make_veth(ifname: str, host: str, mtu: int, netns: str) -> None:
    """A veth pair: `ifname` in the pod's namespace, `host` in ours (the node's)."""
    if link_json(host):
        sh("ip", "link", "del", host)  # a leftover of an earlier ADD for this pod
    # created from inside the pod's namespace; the host end goes to ours (our PID's netns)
    sh("ip", "link", "add", ifname, "mtu", mtu, "type", "veth", "peer", "name", host,
       "mtu", mtu, "netns", os.getpid(), netns=netns)


def require_ipam_type(conf: dict) -> None:
    """A plugin that delegates addresses needs to know to whom."""
    if not isinstance(conf.get("ipam"), dict) or not conf["ipam"].get("type"):
        raise PluginError(INVALID_CONFIG, "ipam.type is missing: the IPAM plugin to delegate "
                          "addresses to")


def delegate_ipam(conf: dict, command: str, env: Mapping[str, str]) -> dict:
    """Run the IPAM plugin the configuration names (found on CNI_PATH), as CNI plugins
    delegate: same environment, same configuration; its result (ADD) or {}."""
    ipam = conf.get("ipam") or {}
    name = ipam.get("type")
    path = next((os.path.join(d, name) for d in env.get("CNI_PATH", "").split(":")
                 if d and name and os.access(os.path.join(d, name), os.X_OK)), None)
    if path is None:
        raise PluginError(INVALID_CONFIG, f"IPAM plugin {name!r} not found on CNI_PATH")
    proc = spawn.run([path], json.dumps(conf), env={**env, "CNI_COMMAND": command})
    if proc.returncode != 0:
        try:
            err = json.loads(proc.stdout)
        except ValueError:
            err = {"code": IO_FAILURE, "msg": proc.stderr.strip() or proc.stdout.strip()}
        raise PluginError(err.get("code", IO_FAILURE), f"IPAM {name}: {err.get('msg')}",
                          err.get("details", ""))
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def main(load_config: Callable[[str], dict],
         environment: Callable[[Mapping[str, str], str], dict],
         add: Callable[[dict, dict], dict], delete: Callable[[dict, dict], object],
         check: Callable[[dict, dict], object], stdin: TextIO = sys.stdin,
         stdout: TextIO = sys.stdout, env: Mapping[str, str] = os.environ) -> int:
    """A plugin's entry point: errors are JSON {cniVersion, code, msg, details} on stdout with
    exit 1, as the spec asks."""
    command = env.get("CNI_COMMAND", "")
    version = CNI_VERSION
    try:
        if command == "VERSION":
            stdout.write(json.dumps({"cniVersion": CNI_VERSION, "supportedVersions": SUPPORTED}))
            return 0
        if command not in ("ADD", "DEL", "CHECK"):
            raise PluginError(INVALID_ENV, f"CNI_COMMAND {command!r} is not ADD, DEL, CHECK or "
                              "VERSION")
        conf = load_config(stdin.read())
        version = conf["cniVersion"]
        ctx = environment(env, command)
        if command == "ADD":
            stdout.write(json.dumps(add(conf, ctx)))
        elif command == "DEL":
            delete(conf, ctx)
        else:
            check(conf, ctx)
        return 0
    except PluginError as e:
        stdout.write(json.dumps({"cniVersion": version, "code": e.code, "msg": e.msg,
                                 "details": e.details}))
        return 1
