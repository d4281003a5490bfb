"""kube-proxy's nftables mode as the testbed renders it: names, maps, and the transaction of a
change."""
import dataclasses

from testbed.kubeproxy import nftables as nft
from testbed.kubeproxy.types import ServicePort

WEB = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 0, False,
                  (("10.244.0.5", 8080), ("10.244.1.5", 8080)))
DNS_TCP = ServicePort("kube-system", "kube-dns", "dns-tcp", "tcp", "10.96.0.10", 53, 0, False,
                      (("10.244.0.4", 53),))


def test_chain_names_hash_as_kube_proxy_does():
    # kube-proxy's nftables chain for cluster DNS over TCP, as `nft list table ip kube-proxy`
    # shows it on a cluster
    assert nft.service_chain(DNS_TCP) == "service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp"
    assert nft.endpoint_base(WEB, ("10.244.0.5", 8080)).endswith(
        "-shop/web/tcp/http__10.244.0.5/8080")


def test_a_service_is_a_map_element_and_a_random_pick_of_endpoint_chains():
    rs = nft.render([WEB], "10.244.0.0/16")
    svc = nft.service_chain(WEB)
    assert rs.elements["service-ips"] == {"10.96.0.11 . tcp . 80": f"goto {svc}"}
    eps = [f"endpoint-{nft.endpoint_base(WEB, ep)}" for ep in WEB.endpoints]
    assert rs.chains[svc] == [
        "ip daddr 10.96.0.11 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 2 vmap {{ 0 : goto {eps[0]}, 1 : goto {eps[1]} }}"]
    assert rs.chains[eps[1]] == ["ip saddr 10.244.1.5 jump mark-for-masquerade",
                                 "meta l4proto tcp dnat to 10.244.1.5:8080"]
    assert rs.chains["services"][0] == "ip daddr . meta l4proto . th dport vmap @service-ips"


def test_node_ports_load_balancer_addresses_and_affinity():
    sp = ServicePort("shop", "web", "", "tcp", "10.96.0.11", 80, 30080, True,
                     (("10.244.0.5", 8080),), ("192.168.1.240",))
    rs = nft.render([sp], "10.244.0.0/16")
    ext, base = nft.external_chain(sp), nft.endpoint_base(sp, ("10.244.0.5", 8080))
    assert rs.elements["service-nodeports"] == {"tcp . 30080": f"goto {ext}"}
    assert rs.elements["service-ips"]["192.168.1.240 . tcp . 80"] == f"goto {ext}"
    assert rs.chains[ext] == ["jump mark-for-masquerade", f"goto {nft.service_chain(sp)}"]
    assert rs.sets == {f"affinity-{base}"}
    assert f"update @affinity-{base} {{ ip saddr }}" in rs.chains[f"endpoint-{base}"]
    assert f"ip saddr @affinity-{base} goto endpoint-{base}" in rs.chains[nft.service_chain(sp)]


def test_the_first_transaction_builds_the_table_and_hooks():
    text = nft.transaction(None, nft.render([WEB], "10.244.0.0/16"))
    lines = text.splitlines()
    assert lines[0].startswith("add table ip kube-proxy")
    assert "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority dstnat ; }" \
        in lines
    # chains exist before rules jump to them, and before map elements point at them
    first_rule = next(i for i, line in enumerate(lines) if line.startswith("add rule"))
    assert all(i < first_rule for i, line in enumerate(lines) if line.startswith("add chain"))
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
    removed = nft.transaction(after, nft.render([DNS_TCP], "10.244.0.0/16"))
    assert "delete element ip kube-proxy service-ips { 10.96.0.11 . tcp . 80 }" in removed


def test_an_sctp_port_is_keyed_and_dnatted_by_its_protocol():
    sctp = dataclasses.replace(WEB, protocol="sctp", port_name="s", endpoints=(
        ("10.244.0.5", 80),))
    rs = nft.render([sctp], "10.244.0.0/16")
    svc = nft.service_chain(sctp)
    assert rs.elements["service-ips"] == {"10.96.0.11 . sctp . 80": f"goto {svc}"}
    assert rs.chains[svc][0].startswith("ip daddr 10.96.0.11 sctp dport 80 ")
    assert "meta l4proto sctp dnat to 10.244.0.5:80" in \
        rs.chains[f"endpoint-{nft.endpoint_base(sctp, ('10.244.0.5', 80))}"]
