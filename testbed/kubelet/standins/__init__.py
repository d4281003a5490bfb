"""Built-in stand-ins for container images, since pods here have no container runtime.

command_for() picks the process standing in for a container from its image, command, args
and env: agnhost's serve-hostname, netexec, porter, pause and connect (servers.py, with
agnhost's own flags, flags.py), an nginx-like page server, or the container's own command.
Whatever the testbed does not imitate — an agnhost subcommand or flag, an image without a
stand-in — comes back as a warning naming it. listening() tells which ports a stand-in will
serve, so that a pod counts as ready only once they answer.
"""
from __future__ import annotations

import sys

from testbed.kubelet.standins import flags as fl
from testbed.kubelet.standins.servers import porter_ports

TYPE_CHECKING = False
if TYPE_CHECKING:  # a stand-in process imports this package: no typing, no manifests
    from collections.abc import Iterable

    from testbed.manifests.kinds import Container

AGNHOST = "agnhost"
AGNHOST_PATHS = ("agnhost", "/agnhost")  # how manifests name its binary in `command`
HTTP_IMAGES = ("nginx", "httpd", "caddy")
SLEEPING_IMAGES = ("busybox", "alpine", "ubuntu", "debian", "curl", "netshoot", "pause")
MODULE = [sys.executable, "-m", "testbed.kubelet.standins"]


def stand_in(pod_name: str) -> list:
    """argv prefix of the stand-in program, answering with the pod's name as its hostname."""
    return MODULE + ["--hostname", pod_name]


def image_name(image: str) -> str:
    return image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]


def agnhost_argv(container: Container) -> list:
    """agnhost's arguments: after its path in `command` (or the image's entrypoint), then args."""
    command = list(container.command)
    if command and command[0].rsplit("/", 1)[-1] == AGNHOST:
        command = command[1:]
    return command + list(container.args)


def command_for(container: Container, pod_name: str) -> tuple:
    """(argv, [warnings]) of the process standing in for a container."""
    image = image_name(container.image)
    if image == AGNHOST:
        return _agnhost(container, pod_name)
    if image in HTTP_IMAGES:
        ports = [p.container_port for p in container.ports if p.protocol == "TCP"]
        ignored = [f"image {image}: its command and args are not imitated (the stand-in serves "
                   "a page naming the pod)"] if container.command or container.args else []
        return stand_in(pod_name) + ["http", "--port", str(ports[0] if ports else 80)], ignored
    if container.command or container.args:
        return list(container.command) + list(container.args), []
    if image in SLEEPING_IMAGES:
        return ["sleep", "infinity"], []
    return ["sleep", "infinity"], [f"image {container.image} has no built-in workload: the "
                                   "container sleeps"]


def _agnhost(container, pod_name):
    args = agnhost_argv(container)
    sub = args[0] if args else "(no subcommand)"
    if sub not in fl.SUBCOMMANDS or sub == "connect":
        built_in = ", ".join(s for s in fl.SUBCOMMANDS if s != "connect")
        return ["sleep", "infinity"], [f"agnhost {sub} is not built in (built in: {built_in}): "
                                       "the container sleeps"]
    warnings = []
    try:
        parsed = fl.parse(sub, args[1:])
    except fl.FlagError as e:
        warnings.append(f"agnhost {sub}: {e}: agnhost exits with this error, and so does the "
                        "stand-in")
        return stand_in(pod_name) + args, warnings
    warnings += [f"agnhost {sub} --{name} is not imitated by the testbed (ignored)"
                 for name in parsed.not_imitated]
    opts = parsed.values
    if sub == "serve-hostname" and opts["http"] and (opts["tcp"] or opts["udp"]):
        warnings.append("agnhost serve-hostname: --http (the default) cannot go with --tcp or "
                        "--udp: agnhost exits, and so does the stand-in (add --http=false)")
    if sub == "porter":
        env = dict(container.env)
        served = porter_ports(env)
        if not served:
            warnings.append("agnhost porter: no SERVE_*_PORT_<n> variable in env: it serves "
                            "nothing")
        warnings += [f"agnhost porter: SERVE_TLS_PORT_{port} is not imitated by the testbed "
                     "(not served)" for proto, port, _v in served if proto == "tls"]
    return stand_in(pod_name) + args, warnings


def listening(argv: list, env: Iterable[tuple[str, str]] = ()) -> list:
    """[(protocol, port)] a stand-in started with `argv` (from command_for) will serve ("tcp",
    "udp" or "sctp"), known before it starts; [] for anything else."""
    if argv[:len(MODULE)] != MODULE:
        return []
    args = argv[len(MODULE) + 2:]  # after --hostname NAME
    sub, rest = (args[0], args[1:]) if args else ("", [])
    if sub == "http":
        return [("tcp", int(rest[rest.index("--port") + 1]) if "--port" in rest else 80)]
    if sub not in fl.SUBCOMMANDS:
        return []
    try:
        opts = fl.parse(sub, rest).values
    except fl.FlagError:
        return []  # it exits at once
    if sub == "serve-hostname":
        if opts["http"] and (opts["tcp"] or opts["udp"]):
            return []
        return ([("tcp", opts["port"])] if opts["tcp"] or opts["http"] else []) + \
            ([("udp", opts["port"])] if opts["udp"] else [])
    if sub == "netexec":
        return [("tcp", opts["http-port"])] + \
            ([("udp", opts["udp-port"])] if opts["udp-port"] != -1 else []) + \
            ([("sctp", opts["sctp-port"])] if opts["sctp-port"] != -1 else [])
    if sub == "porter":
        return [(proto, port) for proto, port, _v in porter_ports(dict(env))
                if proto in ("tcp", "udp", "sctp")]
    return []
