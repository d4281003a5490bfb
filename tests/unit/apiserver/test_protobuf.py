"""Protobuf request bodies as client-go's typed clients send them, decoded without a server."""
import pytest

from testbed.apiserver import protobuf
from testbed.apiserver.status import ApiError


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):
    """A field: an int as a varint, bytes or str length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(key, value):
    return field(1, key) + field(2, value)


def envelope(api_version, kind, raw):
    return protobuf.MAGIC + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


def test_a_deployment_as_kubectl_create_deployment_sends_it():
    meta = field(1, "web") + field(3, "") + field(11, entry("app", "web")) + \
        field(8, field(1, 1_800_000_000))  # creationTimestamp
    port = field(3, 80) + field(4, "TCP")  # containerPort, protocol (hostPort left out)
    container = field(1, "nginx") + field(2, "nginx:1.27") + field(6, port) + field(8, b"")
    template = field(1, field(11, entry("app", "web"))) + field(2, field(2, container))
    spec = field(1, 0) + field(2, field(1, entry("app", "web"))) + field(3, template) + \
        field(5, 0)  # replicas 0 (a pointer: kept), minReadySeconds 0 (omitempty: left out)
    body = envelope("apps/v1", "Deployment", field(1, meta) + field(2, spec))
    obj = protobuf.decode(body)
    assert obj["apiVersion"] == "apps/v1" and obj["kind"] == "Deployment"
    assert obj["metadata"] == {"name": "web", "labels": {"app": "web"},
                               "creationTimestamp": "2027-01-15T08:00:00Z"}
    assert obj["spec"]["replicas"] == 0 and "minReadySeconds" not in obj["spec"]
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    (c,) = obj["spec"]["template"]["spec"]["containers"]
    assert c == {"name": "nginx", "image": "nginx:1.27", "resources": {},
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]}


def test_int_or_string_bytes_maps_and_negative_numbers():
    port = field(1, "http") + field(3, 80) + field(4, field(1, 0) + field(2, 8080))
    named = field(3, 443) + field(4, field(1, 1) + field(3, "https"))
    service = field(1, field(1, "svc")) + field(2, field(1, port) + field(1, named))
    obj = protobuf.decode(envelope("v1", "Service", service))
    assert [p["targetPort"] for p in obj["spec"]["ports"]] == [8080, "https"]
    secret = field(1, field(1, "s")) + field(2, entry("p", b"\x00\xff")) + field(5, 0)
    obj = protobuf.decode(envelope("v1", "Secret", secret))
    assert obj["data"] == {"p": "AP8="}
    assert obj["immutable"] is False  # *bool: false is said, not left out
    pod = field(1, field(1, "p")) + field(2, field(5, -1))  # activeDeadlineSeconds
    assert protobuf.decode(envelope("v1", "Pod", pod))["spec"]["activeDeadlineSeconds"] == -1


def test_an_embedded_struct_is_inlined_as_json_inlines_it():
    """Probe's field 1 is its ProbeHandler, which JSON inlines: httpGet beside periodSeconds."""
    handler = field(2, field(1, "/healthz") + field(2, field(1, 0) + field(2, 8080)))
    probe = field(1, handler) + field(4, 5)
    assert protobuf.decode_message("k8s.io.api.core.v1.Probe", probe) == {
        "httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}


@pytest.mark.parametrize("body, code, words", [
    (b"{}", 400, "envelope"),
    (protobuf.MAGIC + b"\x0a\x05ab", 400, "truncated"),
    (envelope("v1", "Pod", field(99, "x")), 400, "Pod has no field 99"),
    (envelope("batch/v1", "Job", b""), 415, "batch/v1, Kind=Job is not served in protobuf"),
    (envelope("v1", "Pod", field(1, 5)), 400, "wire type 0"),
])
def test_what_cannot_be_decoded_is_refused_with_its_reason(body, code, words):
    with pytest.raises(ApiError) as refused:
        protobuf.decode(body)
    assert refused.value.code == code and words in refused.value.message


def test_go_durations():
    assert [protobuf._go_duration(n) for n in (0, 250_000_000, 1_500_000_000,
                                               3_723_000_000_000)] == \
        ["0s", "250ms", "1.5s", "1h2m3s"]
