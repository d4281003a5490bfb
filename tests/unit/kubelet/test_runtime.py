"""The kubelet role's naming, without root."""
from testbed.kubelet import runtime
from testbed.model.topology import PodSpec


def test_container_id_is_stable_and_cni_safe():
    pod = PodSpec("web-1", "shop", "n1")
    assert runtime.container_id("c1", pod) == "c1-shop-web-1"


def test_pod_ips_from_a_cni_result_ipv4_first_each_once():
    result = {"ips": [{"address": "fd00:10:244::5/64", "gateway": "fd00:10:244::1"},
                      {"address": "10.244.0.5/24"}, {"address": "10.244.0.5/24"}]}
    assert runtime.pod_ips(result) == ["10.244.0.5", "fd00:10:244::5"]
    assert runtime.pod_ips({"ips": []}) == [] and runtime.pod_ips({}) == []
