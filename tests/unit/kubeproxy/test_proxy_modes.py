"""kube-proxy's modes are found through their registry, each describing itself; the ebpf mode's
replacement of kube-proxy serves Services beside them without being one of them."""
import pytest

from testbed.kubeproxy.applier import ProxyApplier
from testbed.kubeproxy.modes import DEFAULT, get_proxy_mode, proxy_mode_names, register
from testbed.lifecycle import doctor
from testbed.modes import services_by


def test_the_registry_lists_every_mode_kube_proxys_default_first():
    assert proxy_mode_names() == ["iptables", "ipvs", "nftables", "userspace"]
    assert DEFAULT == "iptables" and get_proxy_mode("") is get_proxy_mode("iptables")
    for name in proxy_mode_names():
        applier = get_proxy_mode(name)
        assert issubclass(applier, ProxyApplier) and applier.name == name


def test_what_a_mode_needs_is_what_doctor_probes():
    probed = {probe.name for probe in doctor.all_probes()}
    for name in proxy_mode_names():
        assert get_proxy_mode(name).needs and set(get_proxy_mode(name).needs) <= probed, name


def test_the_cni_modes_replacement_serves_services_in_its_runs_only():
    assert services_by("ebpf", "bpf").name == "bpf" and "bpf" not in proxy_mode_names()
    assert services_by("vxlan", "nftables") is get_proxy_mode("nftables")
    assert services_by("bare", "") is get_proxy_mode("iptables")  # a bare underlay's default
    assert services_by("ebpf", "bpf").nat_by == "the datapath's BPF service maps"
    assert get_proxy_mode("ipvs").nat_by == "" and get_proxy_mode("ipvs").tracked_by == \
        "conntrack"


def test_a_mode_registered_twice_is_refused():
    class Again(ProxyApplier):
        name = "iptables"

    with pytest.raises(RuntimeError, match="kube-proxy mode iptables registered twice"):
        register(Again)
    assert get_proxy_mode("iptables") is not Again
