"""A pod's /etc/hosts as the kubelet manages it."""
from testbed.kubelet.hosts import managed_hosts, pod_hostname


def test_a_dual_stack_pod_has_a_line_per_address():
    text = managed_hosts(["10.244.0.2", "fd00:10:244::2"], "web-1", "shop")
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert lines[1:3] == ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    assert lines[-2:] == ["10.244.0.2\tweb-1", "fd00:10:244::2\tweb-1"]


def test_a_subdomain_gives_the_fully_qualified_name_first():
    text = managed_hosts(["10.244.0.2"], "db-0", "shop", "db")
    assert text.splitlines()[-1] == "10.244.0.2\tdb-0.db.shop.svc.cluster.local\tdb-0"


def test_the_hostname_is_spec_hostname_or_the_name_cut_as_the_kubelet_cuts_it():
    assert pod_hostname("web-1", {"hostname": "front"}) == "front"
    assert pod_hostname("a" * 62 + "-b", {}) == "a" * 62
