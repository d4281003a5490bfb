"""The kubelet role's naming, without root."""
from testbed.core.topology import PodSpec
from testbed.kubelet import runtime


def test_container_id_is_stable_and_cni_safe():
    pod = PodSpec("web-1", "shop", "n1")
    assert runtime.container_id("c1", pod) == "c1-shop-web-1"
