"""The kubelet role's naming, without root."""
from testbed.kubelet import runtime
from testbed.model.topology import PodSpec


def test_container_id_is_stable_and_cni_safe():
    pod = PodSpec("web-1", "shop", "n1")
    assert runtime.container_id("c1", pod) == "c1-shop-web-1"
