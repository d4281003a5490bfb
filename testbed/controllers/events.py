"""Events in the API, as the kubelet, the scheduler and the controllers record them: what the
cluster's state has noted since the last pass (a pod scheduled and started, a Service's
rules written, a policy applied, a daemon restarted) written as core/v1 Events naming the
API object they are about, so that `kubectl describe` lists them under Events and
`kubectl get events` shows them. A daemon's events are about the Node it runs on."""
import queue
import threading

from testbed.api.apply import Applying
from testbed.api.describe import SOURCES
from testbed.api.objects import timestamp
from testbed.apiserver.resources import find
from testbed.errors import TestbedError
from testbed.model.records import EventRecord

from .client import ApiClient

# the state's kind word -> the resource of the API object an event of it is about
KINDS = {"pod": find("", "v1", "pods"), "service": find("", "v1", "services"),
         "networkpolicy": find("networking.k8s.io", "v1", "networkpolicies"),
         "ingress": find("networking.k8s.io", "v1", "ingresses"),
         "daemon": find("", "v1", "nodes")}
FEW = 20  # objects whose uids are read one by one rather than by listing their kinds


def involved(obj: str) -> "tuple[str, str, str] | None":
    """(state kind word, namespace, name) of an event's object ("pod/default/web",
    "daemon/flanneld@node1"); None for what names no API object."""
    word, _, rest = obj.partition("/")
    if word == "daemon":
        node = rest.rpartition("@")[2]
        return (word, "", node) if "@" in rest else None
    namespace, _, name = rest.partition("/")
    return (word, namespace, name) if word in KINDS and name else None


def event_object(record: EventRecord, word: str, namespace: str, name: str, uid: str) -> dict:
    resource = KINDS[word]
    stamp = timestamp(record.time)
    source = SOURCES.get(record.reason, "testbed")
    ref = {"kind": resource.kind, "name": name, "apiVersion": resource.group_version}
    if namespace:
        ref["namespace"] = namespace
    if uid:
        ref["uid"] = uid
    return {"apiVersion": "v1", "kind": "Event", "metadata": {
        "name": f"{name}.{int(record.time * 1e9):x}", "namespace": namespace or "default"},
        "involvedObject": ref, "reason": record.reason, "message": record.message,
        "type": record.type, "source": {"component": source}, "count": 1,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "reportingComponent": source,
        "reportingInstance": ""}


class EventsController:
    """Takes the new events each pass; a thread of its own, with a connection of its own,
    writes them, so that a thousand pods' events do not hold up the controllers' next pass."""

    def __init__(self, client: ApiClient):
        self.client = client
        self.written_until = None  # the time of the last event taken; None: not yet read
        self.queue = queue.Queue()
        self.writer = None

    def sync(self, cluster: Applying) -> None:
        if self.written_until is None:  # an owner taking over: what is in the API stays
            self.written_until = self._newest_written()
        new = [e for e in list(cluster.state.events) if e.time > self.written_until]
        if not new:
            return
        self.written_until = new[-1].time
        self.queue.put(new)
        if self.writer is None:
            self.writer = threading.Thread(target=self._write_forever, daemon=True,
                                           name="events")
            self.writer.start()

    def _write_forever(self) -> None:
        while True:
            batch = self.queue.get()
            try:
                self.write(batch)
            except TestbedError:
                pass  # the API server is being restarted: these events are lost, as an
                # event a kubelet cannot post is

    def write(self, records: list) -> None:
        about = [(e, involved(e.object)) for e in records]
        uids = self._uids({found for _e, found in about if found})
        for record, found in about:
            if found:
                doc = event_object(record, *found, uids.get(found, ""))
                self.client.request("POST", f"/api/v1/namespaces/"
                                    f"{doc['metadata']['namespace']}/events", doc)

    def _uids(self, objects: set) -> dict:
        """{(word, namespace, name): uid}: a GET each for a few objects (a kubectl run), a
        list per kind for many (a cluster coming up)."""
        if len(objects) <= FEW:
            out = {}
            for word, namespace, name in objects:
                found = self.client.get(KINDS[word].path(namespace, name))
                out[(word, namespace, name)] = (found or {}).get("metadata", {}).get("uid", "")
            return out
        out = {}
        for word in {found[0] for found in objects}:
            listed = self.client.get(KINDS[word].path()) or {}
            for obj in listed.get("items", []):
                meta = obj["metadata"]
                out[(word, meta.get("namespace", "") if word != "daemon" else "",
                     meta["name"])] = meta.get("uid", "")
        return out

    def _newest_written(self) -> float:
        listed = self.client.get("/api/v1/events") or {}
        newest = 0.0
        for event in listed.get("items", []):
            name = event["metadata"]["name"]
            try:
                newest = max(newest, int(name.rsplit(".", 1)[1], 16) / 1e9)
            except (IndexError, ValueError):
                continue
        return newest
