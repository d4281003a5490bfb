"""Services as the API server records them: addresses, node ports, load-balancer addresses."""
import ipaddress

from testbed.api.kinds import Service, ServicePort
from testbed.core.state import RunState
from testbed.kubeproxy import services


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
