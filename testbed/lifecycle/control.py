"""The client side of a cluster's owner (the supervisor): how a command asks it for something,
and the words it reports its start-up in. Light on purpose: every verb imports it."""
import os
from collections.abc import Callable

from testbed.host import rpc
from testbed.model.state import RunState

READY = "ready"
PROGRESS = "progress: "  # a line of news before "ready" or "error: ..."
# how long a reply may keep a requester waiting (while the supervisor is seen alive, longer);
# tests shorten it to show that a live supervisor is waited for
REQUEST_TIMEOUT_S = float(os.environ.get("TESTBED_REQUEST_TIMEOUT_S", "120"))


def request(state: RunState, op: str, timeout: float = REQUEST_TIMEOUT_S,
            progress: Callable[[str], None] | None = None,
            alive: Callable[[], bool] | None = None, **args: object) -> dict:
    """Send one request to a run's supervisor; returns its JSON reply (rpc.request: progress
    lines restart the timeout, and a live supervisor is waited for as long as it lives).
    Raises OSError if it never answers."""
    return rpc.request(state.control_socket, {"op": op, **args}, timeout, progress, alive)
