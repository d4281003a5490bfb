"""Start an os-ken controller process with the testbed's apps.

    python -m controllers.launch --app fabric --ofp-socket PATH --stats-socket PATH

os-ken 4 ships no manager command; this does what one does (green threads, configuration,
the OpenFlow handler plus our apps). Switches connect over a Unix socket (`unix:PATH` in OVS),
so the controller needs no TCP port and reaches bridges in any network namespace.
"""
import argparse
import logging
import sys

from os_ken.lib import hub

hub.patch(thread=False)

from os_ken import cfg  # noqa: E402  (after patching, as os-ken's own manager does)
from os_ken.base.app_manager import AppManager  # noqa: E402

from . import stats  # noqa: E402

APPS = {"fabric": "controllers.fabric"}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="controllers.launch")
    parser.add_argument("--app", choices=sorted(APPS), action="append", required=True)
    parser.add_argument("--ofp-socket", required=True, help="Unix socket switches connect to")
    parser.add_argument("--stats-socket", required=True, help="Unix socket serving counters")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # the port is unused with a socket path, but os-ken wants one
    cfg.CONF(args=["--ofp-listen-host", args.ofp_socket, "--ofp-tcp-listen-port", "6653"],
             project="os_ken")
    stats.serve(args.stats_socket)
    AppManager.run_apps(["os_ken.controller.ofp_handler"] + [APPS[a] for a in args.app])


if __name__ == "__main__":
    main()
