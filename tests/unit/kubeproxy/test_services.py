"""Services as the API server records them: addresses, node ports, load-balancer addresses."""
import ipaddress

import pytest

from testbed.errors import TestbedError
from testbed.kubeproxy import services
from testbed.manifests.kinds import Service, ServicePort
from testbed.model.records import PodRecord
from testbed.model.state import RunState


def FakeState():
    return RunState("/nonexistent", "t")  # records only: nothing here saves


POOL = tuple(ipaddress.IPv4Address(f"192.168.1.{n}") for n in (240, 241))


def lb(name):
    return Service(name, "shop", "LoadBalancer", {"app": name}, (ServicePort(80, 8080),))


def test_load_balancers_take_pool_addresses_in_turn_then_stay_pending():
    state = FakeState()
    first = services.add(state, lb("a"), POOL)
    second = services.add(state, lb("b"), POOL)
    third = services.add(state, lb("c"), POOL)
    assert (first.load_balancer_ip, second.load_balancer_ip) == ("192.168.1.240",
                                                                      "192.168.1.241")
    assert third.load_balancer_ip == ""  # <pending>, as with no free address
    assert first.ports[0].node_port == 30000 and third.ports[0].node_port == 30002
    assert services.add(state, lb("a"), POOL).load_balancer_ip == "192.168.1.240"  # kept
    services.remove(state, "shop", "a")
    assert services.add(state, lb("c"), POOL).load_balancer_ip == "192.168.1.240"


def test_cluster_ips_skip_the_reserved_ones_and_external_names_get_none():
    state = FakeState()
    web = services.add(state, Service("web", "shop", ports=(ServicePort(80, 80),)))
    assert web.cluster_ip == "10.96.0.2"  # .1 is the API server's
    ext = services.add(state, Service("db", "shop", "ExternalName", external_name="db.example.org"))
    assert ext.cluster_ip == "" and services.service_ports(state)[0].name == "web"
    for n in range(3, 11):
        services.add(state, Service(f"s{n}", "shop", ports=(ServicePort(80, 80),)))
    assert state.services["shop/s10"].cluster_ip == "10.96.0.11"  # .10: cluster DNS


def test_a_local_load_balancer_gets_a_health_check_port_apart_from_node_ports():
    state = FakeState()
    local = Service("a", "shop", "LoadBalancer", {"app": "a"}, (ServicePort(80, 8080),),
                    external_traffic_policy="Local")
    rec = services.add(state, local, POOL)
    assert rec.ports[0].node_port == 30000 and rec.health_check_node_port == 30001
    assert services.add(state, local, POOL).health_check_node_port == 30001  # kept
    second = services.add(state, lb("b"), POOL)
    assert second.ports[0].node_port == 30002 and second.health_check_node_port == 0
    taken = Service("c", "shop", "LoadBalancer", {"app": "c"}, (ServicePort(80, 8080),),
                    external_traffic_policy="Local", health_check_node_port=30002)
    with pytest.raises(TestbedError, match="healthCheckNodePort 30002 is taken"):
        services.add(state, taken, POOL)


def test_kube_proxy_sees_endpoints_with_their_nodes_in_its_order():
    state = FakeState()
    services.add(state, Service("web", "shop", selector={"app": "web"},
                                ports=(ServicePort(80, 8080),), internal_traffic_policy="Local"))
    for name, ip, node in (("p1", "10.244.1.5", "node2"), ("p2", "10.244.1.10", "node2"),
                           ("p3", "10.244.0.9", "node1")):
        state.pods[f"shop/{name}"] = PodRecord(name, "shop", node, f"ns-{name}",
                                               labels={"app": "web"}, ip=ip)
    (sp,) = services.service_ports(state)
    # sorted as kube-proxy sorts them: by the "ip:port" string
    assert [str(ep) for ep in sp.endpoints] == ["10.244.0.9:8080", "10.244.1.10:8080",
                                                "10.244.1.5:8080"]
    assert [ep.node for ep in sp.endpoints] == ["node1", "node2", "node2"]
    assert sp.internal_local and not sp.external_local


def dual_state():
    state = FakeState()
    state.ip_family = "dual"
    return state


def test_a_dual_stack_service_gets_a_cluster_ip_of_each_family_and_a_port_per_family():
    state = dual_state()
    state.pods["shop/a"] = PodRecord("a", "shop", "node1", "a.shop.t", {"app": "a"},
                                     ip="10.244.0.5", ips=["10.244.0.5", "fd00:10:244::5"])
    rec = services.add(state, Service("a", "shop", "NodePort", {"app": "a"},
                                      (ServicePort(80, 8080),),
                                      ip_family_policy="RequireDualStack"))
    assert (rec.cluster_ips, rec.ip_families, rec.ip_family_policy) == (
        ["10.96.0.2", "fd00:10:96::2"], ["IPv4", "IPv6"], "RequireDualStack")
    six = services.add(state, Service("b", "shop", ports=(ServicePort(80, 80),),
                                      ip_families=("IPv6",)))
    # ::1 and ::a stay free in every range, for the API server's and kube-dns' Services of
    # an IPv6-only cluster
    assert (six.cluster_ip, six.cluster_ips) == ("fd00:10:96::3", ["fd00:10:96::3"])
    ports = [p for p in services.service_ports(state) if p.name == "a"]
    assert [(p.family, p.cluster_ip, [str(e) for e in p.endpoints], p.node_port)
            for p in ports] == [("IPv4", "10.96.0.2", ["10.244.0.5:8080"], rec.ports[0].node_port),
                                ("IPv6", "fd00:10:96::2", ["[fd00:10:244::5]:8080"],
                                 rec.ports[0].node_port)]


def test_an_ipv6_service_in_an_ipv4_cluster_is_refused_in_one_line():
    with pytest.raises(TestbedError, match=r"^x.yaml: Service shop/b: spec.ipFamilies\[0\]: "
                       r'Invalid value: "IPv6": not configured on this cluster$'):
        services.add(FakeState(), Service("b", "shop", ports=(ServicePort(80, 80),),
                                          ip_families=("IPv6",), source="x.yaml"))
    with pytest.raises(TestbedError, match="not configured for dual-stack services"):
        services.add(FakeState(), Service("c", "shop", ports=(ServicePort(80, 80),),
                                          ip_family_policy="RequireDualStack"))


def test_an_ipv6_only_cluster_s_services_are_ipv6_with_the_api_server_and_dns_at_1_and_a():
    state = FakeState()
    state.ip_family = "ipv6"
    api = services.add_api_server(state)
    assert (api.cluster_ip, api.ip_families) == ("fd00:10:96::1", ["IPv6"])
    plain = services.add(state, Service("a", "shop", ports=(ServicePort(80, 80),)))
    # the first free one: ::1 is the API server's, ::a stays kube-dns'
    assert (plain.cluster_ips, plain.ip_families, plain.ip_family_policy) == (
        ["fd00:10:96::2"], ["IPv6"], "SingleStack")
    with pytest.raises(TestbedError, match='spec.ipFamilies.0.: Invalid value: "IPv4": not '
                       "configured on this cluster"):
        services.add(state, Service("b", "shop", ports=(ServicePort(80, 80),),
                                    ip_families=("IPv4",)))
    from testbed.addons import dns
    assert dns.server_ip(state) == "fd00:10:96::a"
    assert "nameserver fd00:10:96::a" in dns.resolv_conf("shop", dns.server_ip(state))
    config = dns.render_config("/d", ipv6=True)
    assert "ip-address: ::\n  do-ip4: no\n  do-ip6: yes" in config
    assert "0.0.0.0" not in config


def test_a_dual_stack_load_balancer_gets_an_address_of_each_pool():
    state = dual_state()
    pool = POOL + (ipaddress.IPv6Address("fd00:192:168:1::240"),
                   ipaddress.IPv6Address("fd00:192:168:1::241"))
    rec = services.add(state, Service("a", "shop", "LoadBalancer", {"app": "a"},
                                      (ServicePort(80, 8080),),
                                      ip_family_policy="RequireDualStack"), pool)
    assert rec.load_balancer_ips == ["192.168.1.240", "fd00:192:168:1::240"]
    assert rec.load_balancer_ip == "192.168.1.240"
    single = services.add(state, lb("b"), pool)  # SingleStack IPv4: one address
    assert single.load_balancer_ips == ["192.168.1.241"]
    again = services.add(state, Service("a", "shop", "LoadBalancer", {"app": "a"},
                                         (ServicePort(80, 8080),),
                                         ip_family_policy="RequireDualStack"), pool)
    assert again.load_balancer_ips == rec.load_balancer_ips  # applied again: kept
    ports = [p for p in services.service_ports(state) if p.name == "a"]
    assert [(p.family, p.load_balancer_ips) for p in ports] == [
        ("IPv4", ("192.168.1.240",)), ("IPv6", ("fd00:192:168:1::240",))]
