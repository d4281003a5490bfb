"""Running a command from a CNI plugin without the subprocess module.

A plugin is a process started for one pod, twice per pod in the bgp mode (the plugin and the
IPAM plugin it delegates to). On this kind of machine importing `subprocess` costs about 17 ms
of CPU, as much as the rest of the plugin's imports together; os.posix_spawn and a poll loop
do what the plugins need of it: argv in, stdin text in, exit code and both outputs out.
"""
import os
import select

CHUNK = 65536
SIGPIPE = 13  # Linux's; the child gets it back at its default, as subprocess gives it (a
#               `signal` import would cost what this module saves)


class Finished:
    """What a command did (not a dataclass: importing dataclasses costs what this saves)."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(argv: list[str], input: str | None = None, env: dict | None = None) -> Finished:
    """Run argv (found on PATH), feed it `input`, wait; its exit code and outputs."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        # os.pipe() descriptors close on exec: the child keeps only what is dup'ed to 0, 1, 2
        pid = os.posix_spawnp(argv[0], argv, os.environ if env is None else env, file_actions=[
            (os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2)], setsigdef=(SIGPIPE,))
    except OSError as e:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        return Finished(127, "", f"{argv[0]}: {e.strerror}")
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    pending = (input or "").encode()
    outputs: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in outputs:
        poller.register(fd, select.POLLIN)
    if pending:
        poller.register(in_w, select.POLLOUT)
    else:
        os.close(in_w)
    open_fds = len(outputs) + bool(pending)
    while open_fds:
        for fd, _event in poller.poll():
            if fd == in_w:
                try:
                    pending = pending[os.write(in_w, pending[:CHUNK]):]
                except BrokenPipeError:  # it stopped reading: what it read is what it got
                    pending = b""
                if not pending:
                    poller.unregister(in_w)
                    os.close(in_w)
                    open_fds -= 1
                continue
            chunk = os.read(fd, CHUNK)
            if chunk:
                outputs[fd].append(chunk)
            else:
                poller.unregister(fd)
                os.close(fd)
                open_fds -= 1
    _, status = os.waitpid(pid, 0)
    return Finished(os.waitstatus_to_exitcode(status),
                    b"".join(outputs[out_r]).decode(errors="replace"),
                    b"".join(outputs[err_r]).decode(errors="replace"))
