"""The cluster's events as core/v1 Events: which API object each is about, the Event written,
and the row `kubectl get events` prints of it."""
import calendar
import time

import pytest

from testbed.apiserver.tables import table
from testbed.controllers.events import event_object, involved
from testbed.model.records import EventRecord


@pytest.mark.parametrize("obj, expected", [
    ("pod/shop/web-1", ("pod", "shop", "web-1")),
    ("service/default/web", ("service", "default", "web")),
    ("networkpolicy/default/deny", ("networkpolicy", "default", "deny")),
    ("daemon/flanneld@node2", ("daemon", "", "node2")),  # a daemon's: its node's
    ("daemon/router-bird", None),  # on no node
    ("deployment/default/web", None),  # no kind the API gets events of here
    ("pod/", None),
])
def test_what_an_event_is_about(obj, expected):
    assert involved(obj) == expected


def test_an_event_as_kubectl_describe_finds_and_prints_it():
    when = calendar.timegm((2026, 12, 7, 12, 0, 0)) + 0.25
    record = EventRecord(when, "Normal", "Scheduled", "pod/shop/web-1",
                         "Successfully assigned shop/web-1 to node2")
    doc = event_object(record, "pod", "shop", "web-1", "uid-1")
    # kubectl describe selects by involvedObject name, namespace, kind and uid
    assert doc["metadata"] == {"name": f"web-1.{int(when * 1e9):x}", "namespace": "shop"}
    assert doc["involvedObject"] == {"kind": "Pod", "name": "web-1", "apiVersion": "v1",
                                     "namespace": "shop", "uid": "uid-1"}
    assert doc["source"] == {"component": "default-scheduler"}
    assert doc["firstTimestamp"] == doc["lastTimestamp"] == "2026-12-07T12:00:00Z"
    node = event_object(EventRecord(when, "Warning", "DaemonDied", "daemon/flanneld@node1",
                                    "exited"), "daemon", "", "node1", "")
    assert node["metadata"]["namespace"] == "default"  # where Node events live
    assert node["involvedObject"] == {"kind": "Node", "name": "node1", "apiVersion": "v1"}
    rows = table("events", [doc], now=when + 90)["rows"]
    assert rows[0]["cells"][:4] == ["90s", "Normal", "Scheduled", "pod/web-1"]
    assert rows[0]["cells"][5:7] == ["default-scheduler",
                                     "Successfully assigned shop/web-1 to node2"]


def test_event_names_are_unique_per_instant():
    a = event_object(EventRecord(time.time(), "Normal", "Started", "pod/d/p", ""), "pod", "d",
                     "p", "")
    b = event_object(EventRecord(time.time() + 1e-6, "Normal", "Killing", "pod/d/p", ""),
                     "pod", "d", "p", "")
    assert a["metadata"]["name"] != b["metadata"]["name"]
