"""A nudge for the controllers whenever the API changes: watches of the kinds users change
most (pods, deployments, services), each in a thread of its own, write a byte to a pipe the
cluster's owner waits on with its control socket. So a `kubectl run` reaches the node at once
rather than at the owner's next half-second tick; the tick still catches everything else."""
import os
import select
import ssl
import threading
import time
import urllib.request

WATCHED = ("/api/v1/pods", "/apis/apps/v1/deployments", "/api/v1/services")
RETRY_S = 0.5  # after the API server went away (it is restarted by the owner)
# `kubectl apply -f` of several objects writes them one request after the other, a few
# milliseconds apart: a pass starts once the API has been quiet this long (at most SETTLE_S
# after the first nudge), so that one pass realises them together, Services with the
# Deployment that needs them
QUIET_S = 0.02
SETTLE_S = 0.2


class Wake:
    def __init__(self, server: str, context: ssl.SSLContext):
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self.server, self.context = server, context
        for path in WATCHED:
            threading.Thread(target=self._watch, args=(path,), daemon=True).start()

    def _nudge(self) -> None:
        try:
            os.write(self.write_fd, b"!")
        except BlockingIOError:
            pass  # nudged already: the pipe is full

    def _watch(self, path: str) -> None:
        while True:
            try:
                req = urllib.request.Request(f"{self.server}{path}?watch=1&"
                                             "allowWatchBookmarks=false")
                with urllib.request.urlopen(req, context=self.context) as stream:
                    for _line in stream:
                        self._nudge()
            except (OSError, ValueError):
                pass
            time.sleep(RETRY_S)

    def settle(self) -> None:
        """Take the nudges until the API has been quiet for QUIET_S (at most SETTLE_S)."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            self.drain()
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], min(QUIET_S, left))[0]:
                return

    def drain(self) -> None:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass
