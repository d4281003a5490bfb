"""The Calico-style CNI plugin's parsing, naming and error results, without root."""
import io
import json

import pytest

from testbed.cni import skeleton
from testbed.modes.bgp import calico_plugin as plugin

CONF = {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "testbed-calico",
        "mtu": 1500, "ipam": {"type": "testbed-calico-blocks", "blocks": ["10.244.0.0/26"],
                              "dataDir": "/nonexistent"}}


def run(conf, **env):
    out = io.StringIO()
    text = conf if isinstance(conf, str) else json.dumps(conf)
    code = plugin.main(io.StringIO(text), out, env)
    return code, json.loads(out.getvalue()) if out.getvalue() else None


def test_host_veth_name_follows_calicos_rule():
    # "cali" + sha1("default.web")[:11], as libcalico-go names workload interfaces
    import hashlib
    assert plugin.host_veth_name("default", "web") == \
        "cali" + hashlib.sha1(b"default.web").hexdigest()[:11]
    assert len(plugin.host_veth_name("a-long-namespace", "a-long-pod-name")) == 15


def test_version_lists_supported_spec_versions():
    code, out = run("", CNI_COMMAND="VERSION")
    assert code == 0 and out == {"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}


@pytest.mark.parametrize("conf, env, code, words", [
    ("{not json", {"CNI_COMMAND": "ADD"}, skeleton.DECODE_FAILURE, "not JSON"),
    ({**CONF, "cniVersion": "0.1.0"}, {"CNI_COMMAND": "ADD"}, skeleton.INCOMPATIBLE_VERSION,
     "'0.1.0' is not supported"),
    ({**CONF, "ipam": {"blocks": ["10.244.0.0/26"]}}, {"CNI_COMMAND": "ADD"},
     skeleton.INVALID_CONFIG, "ipam.type is missing"),
    ({**CONF, "mtu": 70000}, {"CNI_COMMAND": "ADD"}, skeleton.INVALID_CONFIG, "mtu 70000"),
    (CONF, {"CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0"}, skeleton.INVALID_ENV,
     "CNI_CONTAINERID, CNI_NETNS"),
    (CONF, {"CNI_COMMAND": "FROB"}, skeleton.INVALID_ENV, "'FROB' is not ADD"),
])
def test_bad_input_gives_a_spec_error_result(conf, env, code, words):
    rc, out = run(conf, **env)
    assert rc == 1
    assert set(out) == {"cniVersion", "code", "msg", "details"}
    assert out["code"] == code and words in out["msg"] + out["details"]


def test_cni_args_give_the_pods_namespace_and_name():
    env = plugin.environment({"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/x",
                              "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;"
                                          "K8S_POD_NAME=web-1"}, "ADD")
    assert env["host_veth"] == plugin.host_veth_name("shop", "web-1")
