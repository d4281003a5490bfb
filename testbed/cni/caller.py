"""The runtime's side of CNI: find a plugin on CNI_PATH, run it with the CNI_* environment and
the network configuration on stdin, and read its result or its error, as the CNI spec says.
"""
import json
import os
import subprocess
from collections.abc import Callable, Sequence

from testbed import BUILD
from testbed.errors import TestbedError

# the testbed's own plugins (built by scripts/install.sh) first, then the distribution's
OWN_PLUGINS = str(BUILD / "cni")
CNI_PATH = (OWN_PLUGINS, "/usr/lib/cni", "/opt/cni/bin")


class CNIError(TestbedError):
    pass


def find_plugin(plugin_type: str, search: Sequence[str] = CNI_PATH) -> str:
    for directory in search:
        path = os.path.join(directory, plugin_type)
        if os.access(path, os.X_OK):
            return path
    raise CNIError(f"CNI plugin {plugin_type!r} not found in {':'.join(search)} "
                   "(install containernetworking-plugins; `testbed doctor` checks)")


def plugin_error_message(stdout: str, stderr: str) -> str:
    """The message of a CNI error result ({code, msg, details}), or the raw output."""
    try:
        err = json.loads(stdout)
        msg = err.get("msg", "")
        details = err.get("details")
        return f"{msg} ({details})" if details and details != msg else msg
    except (ValueError, AttributeError):
        return (stderr or stdout).strip()


def call(command: str, netconf: dict, *, container_id: str, netns_path: str, ifname: str,
         cni_args: str, cni_path: tuple,
         wrap: Callable[[str], str | list[str]] = lambda argv: argv, what: str = "") -> dict:
    """Run one CNI command (ADD, DEL, CHECK); returns the parsed result, or {} when the plugin
    printed nothing. `wrap` turns the plugin's argv into one run where the runtime runs (the
    node's namespace); `what` names the pod and node in an error."""
    plugin = find_plugin(netconf["type"], cni_path)
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns_path,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": cni_args,
        "CNI_PATH": ":".join(cni_path),
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    proc = subprocess.run(wrap(plugin), input=json.dumps(netconf), env=env,
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise CNIError(f"CNI {netconf['type']} {command}{what} failed: "
                       f"{plugin_error_message(proc.stdout, proc.stderr)}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}
