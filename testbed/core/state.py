"""The run's state file: what a cluster is, and every object the testbed made for it.

Objects are recorded *before* they are created (write-ahead), so that even a run killed with
SIGKILL in the middle of a build leaves a complete list for `testbed clean`.
"""
import contextlib
import json
import os
import tempfile
import time

from testbed.host.processes import process_start_time

RUN_ROOT = os.environ.get("TESTBED_RUN_ROOT", "/run/testbed")
STATE_FILE = "state.json"
CONTROL_SOCKET = "control.sock"


def run_dir_for(name):
    return os.path.join(RUN_ROOT, name)


class RunState:
    """One cluster's run directory and state file."""

    def __init__(self, run_dir, data):
        self.dir = run_dir
        self.data = data
        self._deferring = False
        self._dirty = False

    @classmethod
    def create(cls, name, **facts):
        run_dir = run_dir_for(name)
        os.makedirs(RUN_ROOT, exist_ok=True)
        os.makedirs(run_dir)  # fails if a run of that name exists: caller checks first
        data = {"name": name, "status": "building", "nodes": {}, "pods": {},
                "created": time.time(),
                "owned": {"netns": [], "pids": [], "dirs": [], "links": []}}
        data.update(facts)
        state = cls(run_dir, data)
        state.save()
        return state

    @classmethod
    def load(cls, run_dir):
        with open(os.path.join(run_dir, STATE_FILE)) as f:
            return cls(run_dir, json.load(f))

    @property
    def name(self):
        return self.data["name"]

    @property
    def path(self):
        return os.path.join(self.dir, STATE_FILE)

    @property
    def control_socket(self):
        return os.path.join(self.dir, CONTROL_SOCKET)

    def subdir(self, *parts):
        path = os.path.join(self.dir, *parts)
        os.makedirs(path, exist_ok=True)
        return path

    @contextlib.contextmanager
    def deferred_saves(self):
        """Save once at the end of the block instead of at every change. Only for removals:
        a record dropped late lists an object already gone, which `clean` skips; a record
        written late could miss an object that exists."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self._dirty and os.path.isdir(self.dir):
                self.save()

    def save(self):
        if self._deferring:
            self._dirty = True
            return
        self._dirty = False
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".state-")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def update(self, **facts):
        self.data.update(facts)
        self.save()

    # --- owned objects -------------------------------------------------------------------
    def own(self, kind, item):
        self.data["owned"][kind].append(item)
        self.save()

    def disown(self, kind, item):
        items = self.data["owned"][kind]
        if item in items:
            items.remove(item)
            self.save()

    def own_pid(self, pid, what):
        entry = {"pid": pid, "start": process_start_time(pid), "what": what}
        self.own("pids", entry)
        return entry

    def disown_pid(self, pid):
        for entry in list(self.data["owned"]["pids"]):
            if entry["pid"] == pid:
                self.disown("pids", entry)

    def owned(self, kind):
        return list(self.data["owned"][kind])


def list_runs():
    """Run directories present under RUN_ROOT (live or left by a crashed run)."""
    if not os.path.isdir(RUN_ROOT):
        return []
    return sorted(os.path.join(RUN_ROOT, d) for d in os.listdir(RUN_ROOT)
                  if os.path.isdir(os.path.join(RUN_ROOT, d)))
