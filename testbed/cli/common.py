"""What every verb group shares: finding the cluster a command is about, its hosts and
addresses by name, argument types, and a progress line."""
import argparse
import ipaddress
import os
from collections.abc import Callable
from typing import Any, TextIO

from testbed import REPO
from testbed.api.tables import find_pod
from testbed.errors import TestbedError
from testbed.model.records import HostRecord, NodeRecord
from testbed.model.state import RunState, list_runs, run_dir_for
from testbed.modes import Mode, get_mode, mode_names

DEFAULT_TOPOLOGY = REPO / "topologies" / "default.yaml"


def find_run(name: str | None) -> RunState:
    if name:
        run_dir = run_dir_for(name)
        if not os.path.isdir(run_dir):
            raise TestbedError(f"no cluster named {name!r} is running")
        return RunState.load(run_dir)
    runs = list_runs()
    if not runs:
        raise TestbedError("no cluster is running (start one with `testbed up`)")
    if len(runs) > 1:
        names = ", ".join(os.path.basename(r) for r in runs)
        raise TestbedError(f"several clusters are running ({names}): choose one with --name")
    return RunState.load(runs[0])


class StatusLine:
    """One line of progress, rewritten in place on a terminal; elsewhere only the last one."""

    def __init__(self, stream: TextIO):
        self.stream, self.last = stream, ""
        self.tty = stream.isatty()

    def line(self, text: str) -> None:
        self.last = text
        if self.tty:
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\r\033[K")
        elif self.last:
            self.stream.write(self.last + "\n")
        self.stream.flush()


def hosts(state: RunState) -> dict[str, NodeRecord | HostRecord]:
    """Nodes, routers and the external host of a run, by name."""
    return {**state.nodes, **state.routers, **state.hosts}


def address(state: RunState, target: str, namespace: str = "default") -> str:
    """A pod's (in `namespace`, or NAMESPACE/POD), node's or host's address by name, or an
    address as given."""
    try:
        return find_pod(state, target, namespace)[1].ip
    except TestbedError:
        pass
    for table in (state.nodes, state.hosts):
        if target in table:
            return table[target].ip
    try:
        return str(ipaddress.IPv4Address(target))
    except ValueError:
        raise TestbedError(f"{target!r} is no pod of namespace {namespace}, node or IPv4 "
                           "address of this cluster")


def namespace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default="default",
                        help="the pods' Kubernetes namespace (default: default)")


def ranged(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` from low to high, else a one-line usage error."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({low} to {high})")
        return value
    parse.__name__ = kind.__name__  # what argparse names in its own messages
    return parse


def mode_of(state: RunState) -> Mode | None:
    """The Mode a run was built with, or None (the bare underlay, or a mode no longer known)."""
    return get_mode(state.mode) if state.mode in mode_names() else None
