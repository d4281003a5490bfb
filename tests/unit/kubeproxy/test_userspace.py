"""kube-proxy's userspace mode: the portal rules, and the proxy's choice of endpoint."""
import dataclasses

from testbed.kubeproxy.modes import userspace
from testbed.kubeproxy.proxier import Balancer
from testbed.kubeproxy.types import Endpoint, ServicePort

WEB = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 30080, False,
                  (("10.244.0.5", 8080), ("10.244.1.5", 8080)), ("192.168.1.240",))
DNS = ServicePort("kube-system", "kube-dns", "dns", "udp", "10.96.0.10", 53, 0, False,
                  (("10.244.0.4", 53),))


def test_portals_send_service_addresses_and_node_ports_to_the_proxy_port():
    ports = {userspace.key(WEB): 40001, userspace.key(DNS): 40002}
    text = userspace.render([WEB, DNS], "192.168.1.11", ports)
    lines = text.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT" and "*nat" in lines
    to_proxy = "-j DNAT --to-destination 192.168.1.11:40001"
    for chain in ("KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST"):
        assert f'-A {chain} -d 10.96.0.11/32 -p tcp -m comment --comment "shop/web:http" ' \
            f"-m tcp --dport 80 {to_proxy}" in lines
        assert any(line.startswith(f"-A {chain} -d 192.168.1.240/32") for line in lines)
    for chain in ("KUBE-NODEPORT-CONTAINER", "KUBE-NODEPORT-HOST"):
        assert any(line.startswith(f"-A {chain} ") and "--dport 30080" in line and
                   line.endswith(to_proxy) for line in lines)
    assert '-A KUBE-NODEPORT-NON-LOCAL -p tcp -m comment --comment "shop/web:http" -m tcp ' \
        "--dport 40001 -m state --state NEW -j ACCEPT" in lines
    assert "-d 10.96.0.10/32 -p udp" in text and "192.168.1.11:40002" in text
    # a port the proxy does not serve (yet) gets no rule
    assert "10.96.0.10" not in userspace.render([WEB, DNS], "192.168.1.11",
                                                {userspace.key(WEB): 40001})


def test_the_hooks_put_portals_first_and_node_ports_last():
    where = {(table, chain, rule.split(" -j ")[-1]): pos
             for table, chain, pos, rule in userspace.HOOKS}
    assert where[("nat", "PREROUTING", "KUBE-PORTALS-CONTAINER")] == "first"
    assert where[("nat", "OUTPUT", "KUBE-NODEPORT-HOST")] == "last"
    assert userspace.portals(WEB) == {"shop/web:http/tcp": {
        "protocol": "tcp", "affinity": 0, "endpoints": [["10.244.0.5", 8080],
                                                        ["10.244.1.5", 8080]]}}


def test_traffic_policies_choose_a_portals_endpoints_and_external_traffic_gets_its_own():
    local = dataclasses.replace(WEB, external_local=True, internal_local=True, endpoints=(
        Endpoint("10.244.0.5", 8080, "node1"), Endpoint("10.244.1.5", 8080, "node2")))
    portals = userspace.portals(local, "node1")
    assert portals == {name: {"protocol": "tcp", "affinity": 0,
                              "endpoints": [["10.244.0.5", 8080]]}
                       for name in ("shop/web:http/tcp", "shop/web:http/tcp#external")}
    text = userspace.render([local], "192.168.1.11", {"shop/web:http/tcp": 40001,
                                                      "shop/web:http/tcp#external": 40002})
    assert "-d 10.96.0.11/32" in text and "192.168.1.11:40001" in text
    assert all(line.endswith("192.168.1.11:40002") or "NON-LOCAL" in line
               for line in text.splitlines() if "--dport 30080" in line or "192.168.1.240" in line)


def test_the_proxy_goes_round_robin_and_keeps_a_clients_endpoint_with_affinity():
    a, b, c = ("10.244.0.5", 80), ("10.244.1.5", 80), ("10.244.2.5", 80)
    rr = Balancer()
    rr.update([a, b, c], 0)
    assert [rr.pick("10.0.0.1") for _ in range(6)] == [a, b, c, a, b, c]
    assert rr.pick("10.0.0.1", skip=[a, b]) in (c,)  # a refusing endpoint is skipped
    sticky = Balancer()
    sticky.update([a, b, c], 10800)
    first = sticky.pick("10.0.0.1")
    assert {sticky.pick("10.0.0.1") for _ in range(5)} == {first}
    assert sticky.pick("10.0.0.2") != first  # another client, the next endpoint
    sticky.update([ep for ep in (a, b, c) if ep != first], 10800)  # its endpoint went away
    assert sticky.pick("10.0.0.1") != first
    empty = Balancer()
    assert empty.pick("10.0.0.1") is None
