"""The run's state file: what a cluster is, and every object the testbed made for it.

Objects are recorded *before* they are created (write-ahead), so that even a run killed with
SIGKILL in the middle of a build leaves a complete list for `testbed clean`. Each such record
is one line appended to the run's journal (owned.journal) at once; the state file is the
snapshot the journal's lines apply to, rewritten (and the journal emptied) when saved. So a
thousand pods cost a thousand short appends, not a thousand rewrites of a growing file.
"""
import contextlib
import json
import os
import tempfile
import threading
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from testbed.host.processes import Process, process_start_time
from testbed.model.records import (
    DaemonRecord,
    DeploymentRecord,
    DnsRecord,
    EventRecord,
    HostRecord,
    NamespaceRecord,
    NodeRecord,
    Owned,
    PodRecord,
    PolicyEnforcement,
    PolicyRecord,
    ServiceRecord,
    check_record_fields,
    decode,
    decode_fields,
    encode,
)
from testbed.model.topology import IP_FAMILIES

RUN_ROOT = os.environ.get("TESTBED_RUN_ROOT", "/run/testbed")
STATE_FILE = "state.json"
JOURNAL_FILE = "owned.journal"  # ownership changed since state.json was written, a line each
CONTROL_SOCKET = "control.sock"
MAX_EVENTS = 1000  # as an API server keeps events for a while, not forever


def run_dir_for(name: str) -> str:
    return os.path.join(RUN_ROOT, name)


DEFAULT_NAMESPACES = ("default", "kube-system")


@dataclass
class RunState:
    """One cluster's run directory and its state file, as typed records.

    Ownership (`own`, `disown`) is journaled at once, always (write-ahead); every other change
    is saved at once unless inside deferred_saves(). Modes keep their own facts in
    `nodes[...].facts` and `mode_facts`; nothing else of theirs is here. Safe to change from
    several threads (a build attaches pods on different nodes at once).
    """
    dir: str                   # the run directory (not saved: it is where the file is)
    name: str
    status: str = "building"
    created: float = 0.0
    mode: str = ""
    topology: str = ""
    underlay: str = "linux"
    proxy_mode: str = ""  # what serves Services: kube-proxy's mode or its replacement's name
    ip_family: str = "ipv4"  # the cluster's ipFamily (ipv4, ipv6, dual), as it was built
    pod_mtu: int | None = None
    adopted: bool = False
    supervisor: Process | None = None   # the owner: supervisor, interactive up or benchmark
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    routers: dict[str, HostRecord] = field(default_factory=dict)
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    pods: dict[str, PodRecord] = field(default_factory=dict)
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    namespaces: dict[str, NamespaceRecord] = field(
        default_factory=lambda: {n: NamespaceRecord() for n in DEFAULT_NAMESPACES})
    policies: dict[str, PolicyRecord] = field(default_factory=dict)
    ingresses: dict[str, dict] = field(default_factory=dict)  # {"spec": ..., "created": ...}
    ingress_classes: dict[str, dict] = field(default_factory=dict)  # controller, default
    secrets: dict[str, dict] = field(default_factory=dict)  # {"type": ..., "data": ...}
    ingress: dict = field(default_factory=dict)  # the controller: its pod and directory
    daemons: dict[str, DaemonRecord] = field(default_factory=dict)
    dns: DnsRecord | None = None
    fabric: dict = field(default_factory=dict)      # the OVS underlay's facts, if any
    mode_facts: dict = field(default_factory=dict)  # the mode's cluster-wide facts
    control_plane: dict = field(default_factory=dict)  # the API server's: server, kubeconfig
    network_policy: PolicyEnforcement = field(default_factory=PolicyEnforcement)
    warnings: list[str] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)  # the last MAX_EVENTS, oldest first
    timings: dict[str, float] = field(default_factory=dict)
    owned: Owned = field(default_factory=Owned)
    _deferring: bool = field(default=False, repr=False, compare=False)
    _dirty: bool = field(default=False, repr=False, compare=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def create(cls, name: str, **facts: Any) -> "RunState":
        state = cls(run_dir_for(name), name, created=time.time(), **facts)
        check_record_fields(state, facts)  # before anything exists
        os.makedirs(RUN_ROOT, exist_ok=True)
        os.makedirs(state.dir)  # fails if a run of that name exists: caller checks first
        state.save()
        return state

    @classmethod
    def load(cls, run_dir: str) -> "RunState":
        path = os.path.join(run_dir, STATE_FILE)
        with open(path) as f:
            doc = json.load(f)
        try:
            state = cls.from_json(doc, run_dir)
        except (TypeError, KeyError, AttributeError, IndexError) as e:
            raise ValueError(f"{path}: not a state file this version reads ({e})") from e
        state._replay_journal()
        return state

    @classmethod
    def from_json(cls, doc: dict, run_dir: str) -> "RunState":
        """The state a document (as to_json() wrote it) describes, for run directory run_dir."""
        return decode_fields(cls, _upgraded(doc), dir=run_dir)

    def to_json(self) -> dict:
        return {k: v for k, v in encode(self).items() if k != "dir"}

    @property
    def families(self) -> tuple:
        """The cluster's IP families, the primary first ("IPv4", "IPv6")."""
        return IP_FAMILIES[self.ip_family]

    @property
    def path(self) -> str:
        return os.path.join(self.dir, STATE_FILE)

    @property
    def journal_path(self) -> str:
        return os.path.join(self.dir, JOURNAL_FILE)

    @property
    def control_socket(self) -> str:
        return os.path.join(self.dir, CONTROL_SOCKET)

    def subdir(self, *parts: str) -> str:
        path = os.path.join(self.dir, *parts)
        os.makedirs(path, exist_ok=True)
        return path

    @contextlib.contextmanager
    def deferred_saves(self) -> Iterator[None]:
        """Save once at the end of the block instead of at every change (ownership is still
        journaled at once, so `clean` misses nothing meanwhile)."""
        with self._lock:
            self._deferring = True
        try:
            yield
        finally:
            with self._lock:
                self._deferring = False
                if self._dirty and os.path.isdir(self.dir):
                    self.save()

    def save(self) -> None:
        with self._lock:
            if self._deferring:
                self._dirty = True
                return
            self._dirty = False
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".state-")
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            # what the journal said is in the snapshot now; a crash before this line leaves
            # lines that replay to the same lists (_replay_journal)
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.journal_path, 0)

    def event(self, type_: str, reason: str, obj: str, message: str) -> None:
        """Record an event (saved with the state's next save, as the change it tells of)."""
        with self._lock:
            self.events.append(EventRecord(time.time(), type_, reason, obj, message))
            del self.events[:-MAX_EVENTS]

    def update(self, **facts: Any) -> None:
        for key, value in facts.items():
            if not hasattr(self, key) or key == "dir":
                raise AttributeError(f"the run state has no field {key!r}")
            setattr(self, key, value)
        check_record_fields(self, facts)
        self.save()

    # --- owned objects -------------------------------------------------------------------
    def own(self, kind: str, item: object) -> None:
        with self._lock:
            getattr(self.owned, kind).append(item)
            self._journal("own", kind, item)
            self.save()

    def disown(self, kind: str, item: object) -> None:
        with self._lock:
            items = getattr(self.owned, kind)
            if item in items:
                items.remove(item)
                self._journal("disown", kind, item)
                self.save()

    def _journal(self, change: str, kind: str, item: object) -> None:
        line = json.dumps({change: kind, "item": encode(item)}) + "\n"
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write: a reader sees the line whole or not at all
        finally:
            os.close(fd)

    def _replay_journal(self) -> None:
        """Apply the journal's lines, in order, to the lists read from the snapshot. Replaying
        lines the snapshot already holds changes nothing: an item is owned once."""
        try:
            with open(self.journal_path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return
        kinds = typing.get_type_hints(Owned)
        for line in lines:
            try:
                change = json.loads(line)
            except ValueError:  # the last line of a writer killed mid-write
                continue
            kind = change.get("own") or change.get("disown")
            if kind not in kinds:
                continue
            items = getattr(self.owned, kind)
            item = decode(typing.get_args(kinds[kind])[0], change["item"])
            if "own" in change and item not in items:
                items.append(item)
            elif "disown" in change and item in items:
                items.remove(item)

    def own_pid(self, pid: int, what: str) -> Process:
        entry = Process(pid, process_start_time(pid), what)
        self.own("pids", entry)
        return entry

    def disown_pid(self, pid: int) -> None:
        for entry in list(self.owned.pids):
            if entry.pid == pid:
                self.disown("pids", entry)


def _upgraded(doc: dict) -> dict:
    """A state document as this version writes it, from one an earlier version wrote (a run
    left behind across an upgrade must still be cleaned): policies were stored bare, with
    their creation time inside, and the openflow mode's facts had a key of their own."""
    policies = doc.get("policies") or {}
    if any("policy" not in record for record in policies.values()):
        doc = {**doc, "policies": {
            key: record if "policy" in record else
            {"policy": record, "created": record.get("created", 0.0)}
            for key, record in policies.items()}}
    if "openflow" in doc and "mode_facts" not in doc:
        doc = {**doc, "mode_facts": doc["openflow"]}
    return doc


def list_runs() -> list[str]:
    """Run directories present under RUN_ROOT (live or left by a crashed run)."""
    if not os.path.isdir(RUN_ROOT):
        return []
    return sorted(os.path.join(RUN_ROOT, d) for d in os.listdir(RUN_ROOT)
                  if os.path.isdir(os.path.join(RUN_ROOT, d)))
