"""The Calico-style CNI plugin run by hand, as a runtime runs it, on real namespaces."""
import json
import os
import subprocess
import uuid

import pytest

from testbed.cni import skeleton
from testbed.cni.caller import OWN_PLUGINS
from testbed.host import netns
from testbed.modes.bgp import calico_plugin

PLUGIN = os.path.join(OWN_PLUGINS, "testbed-calico")


@pytest.fixture
def node_and_pod(tmp_path):
    if not os.access(PLUGIN, os.X_OK):
        pytest.skip(f"{PLUGIN} is not built (scripts/install.sh makes it)")
    tag = uuid.uuid4().hex[:6]
    node, pod = f"tbnode-{tag}", f"tbpod-{tag}"
    for name in (node, pod):
        netns.run(["ip", "netns", "add", name])
        netns.run(["ip", "-n", name, "link", "set", "lo", "up"])
    yield node, pod, tmp_path / "ipam"
    for name in (pod, node):
        netns.run(["ip", "netns", "del", name], check=False)


def call(node, pod, command, conf, pod_name="web"):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": f"c-{pod}", "CNI_IFNAME": "eth0",
           "CNI_NETNS": netns.netns_path(pod), "CNI_PATH": OWN_PLUGINS,
           "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={pod_name}",
           "PATH": os.environ["PATH"]}
    proc = subprocess.run(["ip", "netns", "exec", node, PLUGIN], env=env, capture_output=True,
                          text=True, input=conf if isinstance(conf, str) else json.dumps(conf))
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None


def config(data_dir):
    return {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "testbed-calico",
            "mtu": 1440, "ipam": {"type": "testbed-calico-blocks",
                                  "blocks": ["10.244.0.64/26"], "dataDir": str(data_dir)}}


def test_add_check_del_wire_a_pod_as_calico_does(node_and_pod):
    node, pod, data_dir = node_and_pod
    code, result = call(node, pod, "ADD", config(data_dir))
    assert code == 0, result
    cali = calico_plugin.host_veth_name("shop", "web")
    assert result["ips"] == [{"address": "10.244.0.64/32", "interface": 1}]
    assert result["interfaces"][0] == {"name": cali, "mac": "ee:ee:ee:ee:ee:ee"}

    node_ns, pod_ns = netns.Namespace(node, lambda a: netns.in_pod(node, a)), \
        netns.pod_namespace(pod)
    host = node_ns.ip_json("link", "show", cali)[0]
    assert (host["address"], host["mtu"]) == ("ee:ee:ee:ee:ee:ee", 1440)
    assert node_ns.run("cat", f"/proc/sys/net/ipv4/conf/{cali}/proxy_arp").strip() == "1"
    route = node_ns.ip_json("route", "show", "10.244.0.64/32")[0]
    assert (route["dev"], route["scope"]) == (cali, "link")
    assert not any(link["ifname"].startswith(("cni0", "br")) for link in node_ns.ip_json("link"))
    eth0 = pod_ns.ip_json("-4", "addr", "show", "eth0")[0]
    assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"]] == [("10.244.0.64", 32)]
    default = [r for r in pod_ns.ip_json("route", "show") if r["dst"] == "default"][0]
    assert default["gateway"] == "169.254.1.1"
    # the node answers for 169.254.1.1 by proxy ARP, which needs a route to it other than
    # through the cali device: a Calico host has its default route for that
    netns.run(["ip", "-n", node, "addr", "add", "192.168.77.1/32", "dev", "lo"])
    netns.run(["ip", "-n", node, "route", "add", "default", "dev", "lo"])
    netns.run(netns.in_pod(pod, ["ping", "-c1", "-W2", "192.168.77.1"]))

    assert call(node, pod, "CHECK", config(data_dir))[0] == 0
    assert call(node, pod, "DEL", config(data_dir))[0] == 0
    assert not any(link["ifname"] == cali for link in node_ns.ip_json("link"))
    assert not (data_dir / "10.244.0.64").exists()
    assert call(node, pod, "DEL", config(data_dir))[0] == 0, "DEL must be idempotent"
    code, err = call(node, pod, "CHECK", config(data_dir))
    assert code == 1 and err["code"] == skeleton.UNKNOWN_CONTAINER


def test_bad_config_by_hand_returns_a_spec_error_and_nonzero_exit(node_and_pod):
    node, pod, data_dir = node_and_pod
    code, err = call(node, pod, "ADD", '{"cniVersion": "1.0.0", "ipam": {}}')
    assert code == 1
    assert set(err) == {"cniVersion", "code", "msg", "details"}
    assert err["code"] == skeleton.INVALID_CONFIG and "ipam.type is missing" in err["msg"]
    # the IPAM plugin it delegates to refuses its part of the configuration the same way
    code, err = call(node, pod, "ADD", {**config(data_dir), "ipam": {
        "type": "testbed-calico-blocks", "blocks": ["10.244.0.64/26"]}})
    assert (code, err["code"]) == (1, skeleton.INVALID_CONFIG)
    assert err["msg"] == "IPAM testbed-calico-blocks: ipam.dataDir is missing"
    assert netns.run(["ip", "-n", pod, "-o", "link"]).count(":") >= 1  # nothing was wired
    assert "eth0" not in netns.run(["ip", "-n", pod, "-o", "link"])
