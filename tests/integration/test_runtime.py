"""The runtime as a kubelet: CNI errors carry the plugin's own words; DEL frees the address."""
import copy
import os

import pytest

from testbed.cni.caller import CNIError
from testbed.host import netns
from testbed.model.topology import ContainerSpec, PodSpec


def test_plugin_error_is_shown_with_the_plugins_message(make_cluster):
    cluster = make_cluster("default.yaml", "vxlan")
    node = cluster.nodes["node1"]
    netconf = copy.deepcopy(cluster.mode.network_config(cluster.spec, node))
    # a range with no free address: host-local itself must refuse
    netconf["ipam"]["ranges"] = [[{"subnet": "10.244.0.0/24", "rangeStart": "10.244.0.2",
                                   "rangeEnd": "10.244.0.3"}]]  # both taken by node1's pods
    pod = PodSpec("extra-pod", "default", "node1", {}, (ContainerSpec("main", ("sleep", "9")),))
    cluster.pods_up.append(pod)  # so that teardown releases whatever was made
    with pytest.raises(CNIError) as info:
        cluster.runtime.create_pod(pod, node, netconf)
    msg = str(info.value)
    assert "CNI bridge ADD for pod default/extra-pod on node node1 failed" in msg
    assert "no IP addresses available in range set" in msg  # host-local's own words


def test_del_releases_the_address_and_the_sandbox(make_cluster):
    cluster = make_cluster("default.yaml", "vxlan")
    node = cluster.nodes["node1"]
    data_dir = cluster.mode.network_config(cluster.spec, node)["ipam"]["dataDir"]
    pod = next(p for p in cluster.spec.pods if p.name == "node1-pod2")
    record = cluster.state.pods[pod.key]
    ip = record.ip
    assert ip in os.listdir(f"{data_dir}/cbr0")
    assert record.netns in netns.netns_list()
    cluster.runtime.delete_pod(pod, node)
    cluster.pods_up.remove(pod)
    assert record.netns not in netns.netns_list()
    assert ip not in os.listdir(f"{data_dir}/cbr0"), "host-local must forget the address on DEL"
