"""Events in the API, as the kubelet, the scheduler and the controllers record them: what the
cluster's state has noted since the last pass (a pod scheduled and started, a Service's
rules written, a policy applied, a daemon restarted) written as core/v1 Events naming the
API object they are about, so that `kubectl describe` lists them under Events and
`kubectl get events` shows them. A daemon's events are about the Node it runs on."""
from testbed.api.describe import SOURCES
from testbed.api.objects import timestamp

# the state's kind word -> (kind, apiVersion, collection of that kind in all namespaces)
KINDS = {"pod": ("Pod", "v1", "/api/v1/pods"),
         "service": ("Service", "v1", "/api/v1/services"),
         "networkpolicy": ("NetworkPolicy", "networking.k8s.io/v1",
                           "/apis/networking.k8s.io/v1/networkpolicies"),
         "ingress": ("Ingress", "networking.k8s.io/v1", "/apis/networking.k8s.io/v1/ingresses"),
         "daemon": ("Node", "v1", "/api/v1/nodes")}


def involved(obj: str) -> "tuple[str, str, str] | None":
    """(state kind word, namespace, name) of an event's object ("pod/default/web",
    "daemon/flanneld@node1"); None for what names no API object."""
    word, _, rest = obj.partition("/")
    if word == "daemon":
        node = rest.rpartition("@")[2]
        return (word, "", node) if "@" in rest else None
    namespace, _, name = rest.partition("/")
    return (word, namespace, name) if word in KINDS and name else None


def event_object(record, word: str, namespace: str, name: str, uid: str) -> dict:
    kind, api_version, _ = KINDS[word]
    stamp = timestamp(record.time)
    source = SOURCES.get(record.reason, "testbed")
    ref = {"kind": kind, "name": name, "apiVersion": api_version}
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
    def __init__(self, client):
        self.client = client
        self.written_until = None  # the time of the last event written; None: not yet read

    def sync(self, cluster) -> None:
        events = list(cluster.state.events)
        if self.written_until is None:  # an owner taking over: what is in the API stays
            self.written_until = self._newest_written()
        new = [e for e in events if e.time > self.written_until]
        if not new:
            return
        about = [(e, involved(e.object)) for e in new]
        uids = self._uids({found[0] for _e, found in about if found})
        for record, found in about:
            if found:
                word, namespace, name = found
                uid = uids.get((word, namespace, name), "")
                doc = event_object(record, word, namespace, name, uid)
                self.client.request("POST", f"/api/v1/namespaces/"
                                    f"{doc['metadata']['namespace']}/events", doc)
            self.written_until = record.time

    def _uids(self, words: set) -> dict:
        """{(word, namespace, name): uid} of the objects of those kinds, a list per kind."""
        out = {}
        for word in words:
            listed = self.client.get(KINDS[word][2]) or {}
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
