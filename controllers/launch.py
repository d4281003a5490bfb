"""Start an os-ken controller process with the testbed's apps.

    python -m controllers.launch --app fabric --ofp-socket PATH --control-socket PATH

os-ken 4 ships no manager command; this does what one does (configuration, the OpenFlow
handler plus our apps). Switches connect over a Unix socket (`unix:PATH` in OVS),
so the controller needs no TCP port and reaches bridges in any network namespace.
"""
import argparse
import logging
import os
import socket
import sys

from os_ken import cfg
from os_ken.base.app_manager import AppManager
from os_ken.controller import controller

from controllers import control

APPS = {"fabric": "controllers.fabric",
        "podnet": "controllers.podnet"}


class _UnixConnection:
    """A switch's connection over a Unix socket. os-ken listens on one when given a path, but
    then sets TCP_NODELAY on each connection, which a Unix socket refuses: that option alone is
    skipped here, everything else goes to the socket."""

    def __init__(self, sock):
        self._sock = sock

    def setsockopt(self, level, option, value):
        if level != socket.IPPROTO_TCP:
            self._sock.setsockopt(level, option, value)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _accept_unix_connections():
    tcp_factory = controller.datapath_connection_factory

    def factory(sock, address):
        return tcp_factory(_UnixConnection(sock), address or ("unix", 0))
    controller.datapath_connection_factory = factory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="controllers.launch")
    parser.add_argument("--app", choices=sorted(APPS), action="append", required=True)
    parser.add_argument("--ofp-socket", required=True, help="Unix socket switches connect to")
    parser.add_argument("--control-socket", required=True,
                        help="Unix socket for counters and cluster updates")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # the port is unused with a socket path, but os-ken wants one
    cfg.CONF(args=["--ofp-listen-host", args.ofp_socket, "--ofp-tcp-listen-port", "6653"],
             project="os_ken")
    _accept_unix_connections()
    if os.path.exists(args.ofp_socket):  # left by a controller that was killed
        os.unlink(args.ofp_socket)
    control.serve(args.control_socket)
    AppManager.run_apps(["os_ken.controller.ofp_handler"] + [APPS[a] for a in args.app])


if __name__ == "__main__":
    main()
