"""kube-proxy's iptables rules as the testbed renders them: names, probabilities, NAT, the
filter table, traffic policies and source ranges."""
import dataclasses

from testbed.kubeproxy.modes import iptables as kubeproxy
from testbed.kubeproxy.types import Endpoint, ServicePort
from tests.unit.kubeproxy import overall


def render(ports, held=None, node="", node_ip=""):
    """(full restore input, its tables) for these ports on a node holding `held`."""
    tables = kubeproxy.ruleset(ports, "10.244.0.0/16", node, node_ip)
    return kubeproxy.restore_input(tables, held), tables


def service_chains(tables):
    return [c for c in tables.nat if c not in kubeproxy.TOP_CHAINS]


def rules(tables, table, chain):
    return [r.removeprefix(f"-A {chain} ") for r in getattr(tables, table).get(chain, [])]


WEB = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 0, False,
                  (("10.244.0.5", 8080), ("10.244.1.5", 8080), ("10.244.1.6", 8080)))


def test_chain_names_hash_as_kube_proxy_does():
    # kube-proxy's chains for the API server's and cluster DNS's services on every cluster
    api = ServicePort("default", "kubernetes", "https", "tcp", "10.96.0.1", 443, 0, False, ())
    dns = ServicePort("kube-system", "kube-dns", "dns", "udp", "10.96.0.10", 53, 0, False, ())
    assert kubeproxy.svc_chain(api) == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert kubeproxy.svc_chain(dns) == "KUBE-SVC-TCOU7JCQXEZGVUNU"


def test_kube_proxys_overall_set_gets_kube_proxys_nat_chains():
    t = kubeproxy.ruleset(overall.SERVICES, overall.POD_CIDR, overall.NODE, overall.NODE_IP)
    # the chains kube-proxy's TestOverallIPTablesRules expects, by name: svc2 (policy Local,
    # no endpoint on this node) has a KUBE-EXT but no KUBE-SVL, svc5 a KUBE-FW, svc6 nothing
    assert set(t.nat) == {
        "KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-POSTROUTING",
        "KUBE-EXT-4SW47YFZTEDKD3PK", "KUBE-EXT-GNZBNJ2PO5MGZ6GT", "KUBE-EXT-NUKIZ6OKUXPJNT4C",
        "KUBE-EXT-X27LE4BHSL4DOUIK", "KUBE-FW-NUKIZ6OKUXPJNT4C", "KUBE-SEP-C6EBXVWJJZMIWKLZ",
        "KUBE-SEP-I77PXRDZVX7PMWMN", "KUBE-SEP-OYPFS5VJICHGATKP", "KUBE-SEP-RS4RBKLTHTF2IUXJ",
        "KUBE-SEP-SXIVWICOYRO3J4NJ", "KUBE-SEP-UKSFD7AGPMPPLUHC", "KUBE-SVC-4SW47YFZTEDKD3PK",
        "KUBE-SVC-GNZBNJ2PO5MGZ6GT", "KUBE-SVC-NUKIZ6OKUXPJNT4C", "KUBE-SVC-X27LE4BHSL4DOUIK",
        "KUBE-SVC-XPGD46QRK7WJZT7O"}
    assert list(t.filter) == list(kubeproxy.FILTER_CHAINS)
    # endpoints in kube-proxy's order whatever order they came in: .4 first, with 1/2
    assert rules(t, "nat", "KUBE-SVC-4SW47YFZTEDKD3PK")[1:] == [
        '-m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random '
        "--probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC",
        '-m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ']
    services = rules(t, "nat", "KUBE-SERVICES")
    assert [r.split(" -j ")[-1] for r in services if "ns2/svc2" in r] == \
        ["KUBE-SVC-GNZBNJ2PO5MGZ6GT"] + ["KUBE-EXT-GNZBNJ2PO5MGZ6GT"] * 2  # cluster, ext, LB
    assert any("5.6.7.8/32" in r and r.endswith("-j KUBE-FW-NUKIZ6OKUXPJNT4C") for r in services)
    assert not any("172.30.0.46" in r for r in services)  # no endpoints: nothing to DNAT
    assert services[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    nodeports = rules(t, "nat", "KUBE-NODEPORTS")
    assert nodeports[:2] == [  # localhost first, then the node's addresses
        "-d 127.0.0.0/8 -p tcp -m tcp --dport 3001 -m comment --comment \"ns2/svc2:p80\" "
        "-j KUBE-EXT-GNZBNJ2PO5MGZ6GT",
        '-p tcp -m tcp --dport 3001 -m comment --comment "ns2/svc2:p80" '
        "-j KUBE-EXT-GNZBNJ2PO5MGZ6GT"]


def test_the_filter_table_refuses_and_drops_what_has_nowhere_to_go():
    t = kubeproxy.ruleset(overall.SERVICES, overall.POD_CIDR, overall.NODE, overall.NODE_IP)
    assert rules(t, "filter", "KUBE-SERVICES") == [
        '-d 172.30.0.46/32 -p tcp -m tcp --dport 80 -m comment --comment '
        '"ns6/svc6:p80 has no endpoints" -j REJECT']
    external = rules(t, "filter", "KUBE-EXTERNAL-SERVICES")
    assert len(external) == 3 and all(r.endswith("-j DROP") and "ns2/svc2:p80 has no local "
                                       "endpoints" in r for r in external)
    assert [("192.168.99.22/32" in external[0]), ("1.2.3.4/32" in external[1]),
            ("--dst-type LOCAL" in external[2] and "--dport 3001" in external[2])] == [True] * 3
    assert rules(t, "filter", "KUBE-NODEPORTS") == [
        '-p tcp -m comment --comment "ns2/svc2:p80 health check node port" -m tcp --dport 30000 '
        "-j ACCEPT"]
    assert rules(t, "filter", "KUBE-PROXY-FIREWALL") == [
        '-d 5.6.7.8/32 -p tcp -m tcp --dport 80 -m comment --comment "ns5/svc5:p80 traffic not '
        'accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -j DROP']
    forward = rules(t, "filter", "KUBE-FORWARD")
    assert forward[0] == "-m conntrack --ctstate INVALID -j DROP"
    assert "--mark 0x4000/0x4000 -j ACCEPT" in forward[1] and "RELATED,ESTABLISHED" in forward[2]
    assert "-d 127.0.0.0/8 ! -s 127.0.0.0/8" in rules(t, "filter", "KUBE-FIREWALL")[0]


def test_external_policy_local_keeps_the_client_address_and_uses_node_endpoints():
    t = kubeproxy.ruleset(overall.SERVICES, overall.POD_CIDR, overall.NODE, overall.NODE_IP)
    # no endpoint here: pods and the node itself still get through, nothing else
    assert rules(t, "nat", "KUBE-EXT-GNZBNJ2PO5MGZ6GT") == [
        '-s 10.0.0.0/8 -m comment --comment "pod traffic for ns2/svc2:p80 external '
        'destinations" -j KUBE-SVC-GNZBNJ2PO5MGZ6GT',
        '-m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external '
        'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
        '-m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" '
        "-m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT"]
    svc2 = overall.SERVICES[1]
    here = dataclasses.replace(svc2, endpoints=(Endpoint("10.180.0.2", 80, "elsewhere"),
                                                Endpoint("10.180.0.9", 80, overall.NODE)))
    t = kubeproxy.ruleset([here], overall.POD_CIDR, overall.NODE, overall.NODE_IP)
    svl = kubeproxy.svl_chain(here)
    assert rules(t, "nat", kubeproxy.ext_chain(here))[-1] == f"-j {svl}"
    assert not any("KUBE-MARK-MASQ" in r for r in rules(t, "nat", svl))  # the client stays
    assert [r.split(" -j ")[-1] for r in rules(t, "nat", svl)] == \
        [kubeproxy.sep_chain(here, ("10.180.0.9", 80))]
    assert len(rules(t, "nat", kubeproxy.svc_chain(here))) == 3  # in-cluster: both
    assert rules(t, "filter", "KUBE-EXTERNAL-SERVICES") == []


def test_internal_policy_local_keeps_cluster_ip_traffic_on_the_node():
    sp = dataclasses.replace(WEB, internal_local=True, endpoints=(
        Endpoint("10.244.0.5", 8080, "node1"), Endpoint("10.244.1.5", 8080, "node2")))
    _, on1 = render([sp], node="node1")
    svl = kubeproxy.svl_chain(sp)
    assert rules(on1, "nat", "KUBE-SERVICES")[0].endswith(f"-j {svl}")
    assert kubeproxy.svc_chain(sp) not in on1.nat
    assert [r.split(" -j ")[-1] for r in rules(on1, "nat", svl)] == [
        "KUBE-MARK-MASQ", kubeproxy.sep_chain(sp, ("10.244.0.5", 8080))]
    _, on3 = render([sp], node="node3")  # no endpoint here: dropped, not refused
    assert svl not in on3.nat and len(rules(on3, "nat", "KUBE-SERVICES")) == 1
    assert rules(on3, "filter", "KUBE-SERVICES")[0].endswith(
        '"shop/web:http has no local endpoints" -j DROP')


def test_source_ranges_let_the_node_in_by_its_load_balancer_address():
    sp = dataclasses.replace(overall.SERVICES[4], source_ranges=("192.168.0.0/24",))
    t = kubeproxy.ruleset([sp], overall.POD_CIDR, overall.NODE, overall.NODE_IP)
    fw = kubeproxy.fw_chain(sp)
    assert [r.split(" -m ")[0] for r in rules(t, "nat", fw)][:2] == \
        ["-s 192.168.0.0/24", "-s 5.6.7.8/32"]
    assert rules(t, "nat", fw)[-1].endswith('"other traffic to ns5/svc5:p80 will be dropped by '
                                            'KUBE-PROXY-FIREWALL"')


def test_endpoints_are_picked_with_equal_chances_and_dnatted():
    text, tables = render([WEB])
    svc = kubeproxy.svc_chain(WEB)
    lines = text.splitlines()
    assert lines[0] == "*filter" and "*nat" in lines and lines[-1] == "COMMIT"
    picks = [line for line in lines if line.startswith(f"-A {svc} ") and "KUBE-SEP-" in line]
    assert ["--probability 0.3333333333" in picks[0], "--probability 0.5000000000" in picks[1],
            "statistic" not in picks[2]] == [True, True, True]
    for ip in ("10.244.0.5", "10.244.1.5", "10.244.1.6"):
        sep = kubeproxy.sep_chain(WEB, (ip, 8080))
        assert f"-A {sep} -s {ip}/32" in text and f"--to-destination {ip}:8080" in text
    assert (f"-A KUBE-SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 80 "
            f'-m comment --comment "shop/web:http cluster IP" -j {svc}') in text
    assert f"-A {svc} ! -s 10.244.0.0/16 -d 10.96.0.11/32" in text  # masquerade from outside
    assert "-j MASQUERADE --random-fully" in text
    assert len(service_chains(tables)) == 4


def test_node_ports_and_client_ip_affinity_with_its_timeout():
    sp = ServicePort("shop", "web", "", "tcp", "10.96.0.11", 80, 30080, True,
                     (("10.244.0.5", 8080),), affinity_timeout=60)
    text, _ = render([sp])
    ext, sep = kubeproxy.ext_chain(sp), kubeproxy.sep_chain(sp, ("10.244.0.5", 8080))
    assert "-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080" in text and f"-j {ext}" in text
    assert f"-A {ext} -j {kubeproxy.svc_chain(sp)}" in text
    assert f"--name {sep} --mask 255.255.255.255 --rsource --rcheck --seconds 60" in text
    assert f"--name {sep} --mask 255.255.255.255 --rsource --set -j DNAT" in text


def test_chains_that_went_away_are_deleted_and_empty_services_refused():
    _, tables = render([WEB])
    empty = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 0, False, ())
    text, now = render([empty], held=tables)
    assert service_chains(now) == []
    for chain in service_chains(tables):
        assert f":{chain} - [0:0]" in text and f"-X {chain}" in text
    assert '"shop/web:http has no endpoints" -j REJECT' in text


def test_sctp_ports_get_the_same_rules_with_sctp_matches():
    sp = ServicePort("x", "s-x-a", "service-port-sctp-80", "sctp", "10.96.0.12", 80, 30081,
                     False, (("10.244.0.5", 80),))
    text, _ = render([sp])
    assert "-A KUBE-SERVICES -d 10.96.0.12/32 -p sctp -m sctp --dport 80" in text
    assert "-A KUBE-NODEPORTS -p sctp -m sctp --dport 30081" in text
    sep = kubeproxy.sep_chain(sp, ("10.244.0.5", 80))
    assert f'-A {sep} -p sctp -m sctp -m comment --comment "x/s-x-a:service-port-sctp-80" ' \
        "-j DNAT --to-destination 10.244.0.5:80" in text


def test_a_partial_sync_writes_the_top_chains_and_only_what_changed():
    other = ServicePort("shop", "db", "", "tcp", "10.96.0.12", 5432, 0, False,
                        (("10.244.0.7", 5432),))
    held = kubeproxy.ruleset([WEB, other], "10.244.0.0/16")
    moved = ServicePort("shop", "db", "", "tcp", "10.96.0.12", 5432, 0, False,
                        (("10.244.0.8", 5432),))  # its endpoint moved
    now = kubeproxy.ruleset([WEB, moved], "10.244.0.0/16")
    text = kubeproxy.restore_input(now, held, partial=True)
    nat = text[text.index("*nat"):]
    declared = {line[1:].split()[0] for line in nat.splitlines() if line.startswith(":")}
    old_sep = kubeproxy.sep_chain(other, ("10.244.0.7", 5432))
    new_sep = kubeproxy.sep_chain(moved, ("10.244.0.8", 5432))
    # the top chains always, db's service chain (it jumps elsewhere now), its new endpoint,
    # and the old endpoint to delete; none of web's unchanged chains
    assert declared == {*kubeproxy.TOP_CHAINS, kubeproxy.svc_chain(moved), new_sep, old_sep}
    assert f"-X {old_sep}" in text and "-A KUBE-SERVICES" in text
    assert not any(kubeproxy.svc_chain(WEB) in line for line in nat.splitlines()
                   if not line.startswith("-A KUBE-SERVICES"))
    # what a node ends up with is what a full restore gives it
    full = kubeproxy.restore_input(now, held)
    assert set(full.splitlines()) >= set(text.splitlines())


def test_the_ipv6_proxier_writes_the_same_chains_for_ip6tables():
    web6 = ServicePort("shop", "web", "http", "tcp", "fd00:10:96::b", 80, 30080, True,
                       (("fd00:10:244::5", 8080),), family="IPv6")
    tables = kubeproxy.ruleset([web6], "fd00:10:244::/56", "node1", "fd00:192:168:1::11",
                               family="IPv6")
    svc, sep = kubeproxy.svc_chain(web6), kubeproxy.sep_chain(web6, ("fd00:10:244::5", 8080))
    # the endpoint's hash is over "[ip]:port", as Go's JoinHostPort writes it
    assert sep == "KUBE-SEP-" + kubeproxy._hash("shop/web:httptcp[fd00:10:244::5]:8080")
    assert rules(tables, "nat", "KUBE-SERVICES")[0].startswith(
        f'-d fd00:10:96::b/128 -p tcp -m tcp --dport 80 -m comment --comment "shop/web:http '
        f'cluster IP" -j {svc}')
    assert rules(tables, "nat", sep) == [
        '-s fd00:10:244::5/128 -m comment --comment "shop/web:http" -j KUBE-MARK-MASQ',
        '-p tcp -m tcp -m comment --comment "shop/web:http" -m recent --name '
        f'{sep} --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource --set -j DNAT '
        "--to-destination [fd00:10:244::5]:8080"]
    assert "! -s fd00:10:244::/56 -d fd00:10:96::b/128" in rules(tables, "nat", svc)[0]
    # no localhost NodePorts and no 127.0.0.0/8 rule in IPv6, as kube-proxy keeps them to IPv4
    assert not any("127.0.0.0/8" in r for c in (tables.nat, tables.filter) for rs in c.values()
                   for r in rs)
    assert any("--dport 30080" in r for r in rules(tables, "nat", "KUBE-NODEPORTS"))
