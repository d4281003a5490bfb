"""kube-proxy's nftables mode as the testbed renders it: names, maps, the filter side, traffic
policies, and the transaction of a change."""
import dataclasses

from testbed.kubeproxy.modes import nftables as nft
from testbed.kubeproxy.types import Endpoint, ServicePort
from tests.unit.kubeproxy import overall

WEB = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 0, False,
                  (("10.244.0.5", 8080), ("10.244.1.5", 8080)))
DNS_TCP = ServicePort("kube-system", "kube-dns", "dns-tcp", "tcp", "10.96.0.10", 53, 0, False,
                      (("10.244.0.4", 53),))


def overall_render():
    return nft.render(overall.SERVICES, overall.POD_CIDR, overall.NODE, overall.NODE_IP,
                      "172.30.0.0/16")


def test_chain_names_hash_as_kube_proxy_does():
    # kube-proxy's nftables chain for cluster DNS over TCP, as `nft list table ip kube-proxy`
    # shows it on a cluster
    assert nft.service_chain(DNS_TCP) == "service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp"
    assert nft.endpoint_base(WEB, ("10.244.0.5", 8080)).endswith(
        "-shop/web/tcp/http__10.244.0.5/8080")


def test_kube_proxys_overall_set_gets_kube_proxys_chains_and_elements():
    rs = overall_render()
    ours = set(rs.chains) - set(nft.CHAINS)
    # the per-service chains kube-proxy's TestOverallNFTablesRules expects, by name
    assert ours == {
        "service-ULMVA6XW-ns1/svc1/tcp/p80", "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80",
        "service-42NFTM6N-ns2/svc2/tcp/p80", "external-42NFTM6N-ns2/svc2/tcp/p80",
        "endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80",
        "service-4AT6LBPK-ns3/svc3/tcp/p80", "external-4AT6LBPK-ns3/svc3/tcp/p80",
        "endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80",
        "service-LAUZTJTB-ns4/svc4/tcp/p80", "external-LAUZTJTB-ns4/svc4/tcp/p80",
        "endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80",
        "endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80",
        "service-HVFWP5L3-ns5/svc5/tcp/p80", "external-HVFWP5L3-ns5/svc5/tcp/p80",
        "endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80", "firewall-HVFWP5L3-ns5/svc5/tcp/p80"}
    assert rs.set_elements == {"cluster-ips": {f"172.30.0.4{n}" for n in range(1, 7)},
                               "nodeport-ips": {"192.168.0.2"}}
    assert rs.elements["no-endpoint-services"] == {
        "172.30.0.46 . tcp . 80": ("ns6/svc6:p80", "goto reject-chain"),
        "192.168.99.22 . tcp . 80": ("ns2/svc2:p80", "drop"),
        "1.2.3.4 . tcp . 80": ("ns2/svc2:p80", "drop")}
    assert rs.elements["no-endpoint-nodeports"] == {"tcp . 3001": ("ns2/svc2:p80", "drop")}
    assert rs.elements["firewall-ips"] == {
        "5.6.7.8 . tcp . 80": ("", "goto firewall-HVFWP5L3-ns5/svc5/tcp/p80")}
    assert rs.chains["firewall-HVFWP5L3-ns5/svc5/tcp/p80"] == [
        "ip saddr != { 203.0.113.0/25 } drop"]
    assert rs.chains["cluster-ips-check"][1].startswith("ip daddr { 172.30.0.0/16 } drop")
    assert rs.chains["service-LAUZTJTB-ns4/svc4/tcp/p80"][-1] == (
        "numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80"
        " , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }")


def test_external_policy_local_short_circuits_pods_and_the_node_only():
    rs = overall_render()
    svc = "service-42NFTM6N-ns2/svc2/tcp/p80"
    assert rs.chains["external-42NFTM6N-ns2/svc2/tcp/p80"] == [
        f'ip saddr 10.0.0.0/8 goto {svc} comment "short-circuit pod traffic"',
        'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
        f'fib saddr type local goto {svc} comment "short-circuit local traffic"']
    here = dataclasses.replace(overall.SERVICES[1], endpoints=(
        Endpoint("10.180.0.2", 80, "elsewhere"), Endpoint("10.180.0.9", 80, overall.NODE)))
    rs = nft.render([here], overall.POD_CIDR, overall.NODE, overall.NODE_IP)
    local = nft.local_chain(here)
    assert local.startswith("local-") and rs.chains[nft.external_chain(here)][-1] == \
        f"goto {local}"
    mine = f"endpoint-{nft.endpoint_base(here, here.endpoints[1])}"
    assert rs.chains[local] == [f"numgen random mod 1 vmap {{ 0 : goto {mine} }}"]
    assert rs.elements["no-endpoint-nodeports"] == {}


def test_internal_policy_local_drops_on_a_node_without_an_endpoint():
    sp = dataclasses.replace(WEB, internal_local=True, endpoints=(
        Endpoint("10.244.0.5", 8080, "node1"),))
    on1 = nft.render([sp], "10.244.0.0/16", "node1")
    assert on1.elements["service-ips"] == {
        "10.96.0.11 . tcp . 80": ("", f"goto {nft.local_chain(sp)}")}
    on2 = nft.render([sp], "10.244.0.0/16", "node2")
    assert on2.elements["service-ips"] == {}
    assert on2.elements["no-endpoint-services"] == {"10.96.0.11 . tcp . 80": ("shop/web:http",
                                                                              "drop")}


def test_a_service_is_a_map_element_and_a_random_pick_of_endpoint_chains():
    rs = nft.render([WEB], "10.244.0.0/16")
    svc = nft.service_chain(WEB)
    assert rs.elements["service-ips"] == {"10.96.0.11 . tcp . 80": ("", f"goto {svc}")}
    eps = [f"endpoint-{nft.endpoint_base(WEB, ep)}" for ep in WEB.endpoints]
    assert rs.chains[svc] == [
        "ip daddr 10.96.0.11 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 2 vmap {{ 0 : goto {eps[0]} , 1 : goto {eps[1]} }}"]
    assert rs.chains[eps[1]] == ["ip saddr 10.244.1.5 jump mark-for-masquerade",
                                 "meta l4proto tcp dnat to 10.244.1.5:8080"]
    assert rs.chains["services"][0] == "ip daddr . meta l4proto . th dport vmap @service-ips"


def test_node_ports_load_balancer_addresses_and_affinity():
    sp = ServicePort("shop", "web", "", "tcp", "10.96.0.11", 80, 30080, True,
                     (("10.244.0.5", 8080),), ("192.168.1.240",), affinity_timeout=90)
    rs = nft.render([sp], "10.244.0.0/16")
    ext, base = nft.external_chain(sp), nft.endpoint_base(sp, ("10.244.0.5", 8080))
    assert rs.elements["service-nodeports"] == {"tcp . 30080": ("", f"goto {ext}")}
    assert rs.elements["service-ips"]["192.168.1.240 . tcp . 80"] == ("", f"goto {ext}")
    assert rs.chains[ext] == ["jump mark-for-masquerade", f"goto {nft.service_chain(sp)}"]
    assert rs.sets == {f"affinity-{base}": 90}
    assert f"update @affinity-{base} {{ ip saddr }}" in rs.chains[f"endpoint-{base}"]
    assert f"ip saddr @affinity-{base} goto endpoint-{base}" in rs.chains[nft.service_chain(sp)]
    assert "timeout 90s" in nft.transaction(None, rs)


def test_the_first_transaction_builds_the_table_and_hooks():
    text = nft.transaction(None, nft.render([WEB], "10.244.0.0/16", "n", "192.168.0.2"))
    lines = text.splitlines()
    assert lines[0].startswith("add table ip kube-proxy")
    assert "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }" \
        in lines
    # chains exist before rules jump to them, and before map elements point at them
    first_rule = next(i for i, line in enumerate(lines) if line.startswith("add rule"))
    assert all(i < first_rule for i, line in enumerate(lines) if line.startswith("add chain"))
    assert "add element ip kube-proxy nodeport-ips { 192.168.0.2 }" in lines
    assert lines[-1].startswith("add element ip kube-proxy service-ips { 10.96.0.11 . tcp . 80")


def test_a_change_touches_only_what_changed():
    before = nft.render([WEB, DNS_TCP], "10.244.0.0/16")
    scaled = dataclasses.replace(WEB, endpoints=(("10.244.0.5", 8080),))
    after = nft.render([scaled, DNS_TCP], "10.244.0.0/16")
    text = nft.transaction(before, after)
    gone = f"endpoint-{nft.endpoint_base(WEB, ('10.244.1.5', 8080))}"
    assert f"flush chain ip kube-proxy {nft.service_chain(WEB)}" in text
    assert text.rstrip().endswith(f"delete chain ip kube-proxy {gone}")
    assert "kube-dns" not in text and "add table" not in text  # untouched
    assert "element" not in text  # the ClusterIP's map element still points at the same chain
    assert nft.transaction(after, after) == ""
    emptied = nft.transaction(after, nft.render([dataclasses.replace(WEB, endpoints=()),
                                                 DNS_TCP], "10.244.0.0/16"))
    assert "delete element ip kube-proxy service-ips { 10.96.0.11 . tcp . 80 }" in emptied
    assert 'add element ip kube-proxy no-endpoint-services { 10.96.0.11 . tcp . 80 comment ' \
        '"shop/web:http" : goto reject-chain }' in emptied
    removed = nft.transaction(after, nft.render([DNS_TCP], "10.244.0.0/16"))
    assert "delete element ip kube-proxy cluster-ips { 10.96.0.11 }" in removed


def test_a_changed_affinity_timeout_remakes_the_set_after_its_users_let_go():
    sp = dataclasses.replace(WEB, affinity=True, endpoints=(("10.244.0.5", 8080),))
    old = nft.render([sp], "10.244.0.0/16")
    text = nft.transaction(old, nft.render([dataclasses.replace(sp, affinity_timeout=5)],
                                           "10.244.0.0/16"))
    lines = text.splitlines()
    name = f"affinity-{nft.endpoint_base(sp, ('10.244.0.5', 8080))}"
    flushes = [i for i, line in enumerate(lines) if line.startswith("flush chain")]
    assert len(flushes) == 2  # the service chain and the endpoint chain both use the set
    assert max(flushes) < lines.index(f"delete set ip kube-proxy {name}") < \
        next(i for i, line in enumerate(lines) if line.startswith("add rule"))
    assert f"add set ip kube-proxy {name} {{ type ipv4_addr ; flags dynamic,timeout ; " \
        "timeout 5s ; }" in lines


def test_an_sctp_port_is_keyed_and_dnatted_by_its_protocol():
    sctp = dataclasses.replace(WEB, protocol="sctp", port_name="s", endpoints=(
        ("10.244.0.5", 80),))
    rs = nft.render([sctp], "10.244.0.0/16")
    svc = nft.service_chain(sctp)
    assert rs.elements["service-ips"] == {"10.96.0.11 . sctp . 80": ("", f"goto {svc}")}
    assert "meta l4proto sctp dnat to 10.244.0.5:80" in \
        rs.chains[f"endpoint-{nft.endpoint_base(sctp, ('10.244.0.5', 80))}"]


def test_the_ipv6_proxier_writes_table_ip6_kube_proxy_with_the_same_chains():
    web6 = ServicePort("shop", "web", "http", "tcp", "fd00:10:96::b", 80, 30080, True,
                       (("fd00:10:244::5", 8080),), family="IPv6")
    rs = nft.render([web6], "fd00:10:244::/56", "node1", "fd00:192:168:1::11", family="IPv6")
    text = nft.transaction(None, rs)
    assert 'add table ip6 kube-proxy { comment "rules for kube-proxy" ; }' in text
    assert "add set ip6 kube-proxy cluster-ips { type ipv6_addr ;" in text
    assert "add map ip6 kube-proxy service-ips { type ipv6_addr . inet_proto . inet_service" \
        in text
    assert "ip kube-proxy" not in text and "ipv4_addr" not in text
    assert "add element ip6 kube-proxy service-ips { fd00:10:96::b . tcp . 80 : goto " \
        f"{nft.service_chain(web6)} }}" in text
    base = nft.endpoint_base(web6, ("fd00:10:244::5", 8080))
    assert base.endswith("-shop/web/tcp/http__fd00.10.244..5/8080")  # no colon in a name
    endpoint = rs.chains[f"endpoint-{base}"]
    assert endpoint == ["ip6 saddr fd00:10:244::5 jump mark-for-masquerade",
                        f"update @affinity-{nft.endpoint_base(web6, ('fd00:10:244::5', 8080))}"
                        " { ip6 saddr }",
                        "meta l4proto tcp dnat to [fd00:10:244::5]:8080"]
    assert rs.chains["cluster-ips-check"][1].startswith("ip6 daddr { fd00:10:96::/112 } drop")
    assert rs.set_elements["nodeport-ips"] == {"fd00:192:168:1::11"}
