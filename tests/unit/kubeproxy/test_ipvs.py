"""kube-proxy's IPVS mode as the testbed renders it: virtual servers, ipsets, addresses, and
the commands of a change."""
import dataclasses

from testbed.kubeproxy.modes import ipvs
from testbed.kubeproxy.types import Endpoint, ServicePort

WEB = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 30080, False,
                  (("10.244.0.5", 8080), ("10.244.1.5", 8080)), ("192.168.1.240",))
DNS = ServicePort("kube-system", "kube-dns", "dns", "udp", "10.96.0.10", 53, 0, True,
                  (("10.244.0.4", 53),))


def test_every_address_and_port_is_a_virtual_server_of_its_endpoints():
    st = ipvs.render([WEB, DNS], "192.168.1.11")
    reals = frozenset((ep.ip, ep.port) for ep in WEB.endpoints)
    assert st.virtual[("tcp", "10.96.0.11", 80)] == (0, reals)
    assert st.virtual[("tcp", "192.168.1.240", 80)] == (0, reals)  # LoadBalancer
    assert st.virtual[("tcp", "192.168.1.11", 30080)] == (0, reals)  # NodePort on the node
    assert st.virtual[("udp", "10.96.0.10", 53)] == (10800, frozenset({("10.244.0.4", 53)}))
    assert st.addresses == {"10.96.0.11", "192.168.1.240", "10.96.0.10"}
    assert st.sets["KUBE-CLUSTER-IP"] == {"10.96.0.11,tcp:80", "10.96.0.10,udp:53"}
    assert st.sets["KUBE-NODE-PORT-TCP"] == {"30080"}
    assert "10.244.1.5,tcp:8080,10.244.1.5" in st.sets["KUBE-LOOP-BACK"]


def test_the_first_commands_create_everything_in_kube_proxys_syntax():
    virtual, sets, addresses = ipvs.commands(None, ipvs.render([DNS], "192.168.1.11"))
    assert virtual.splitlines() == ["-A -u 10.96.0.10:53 -s rr -p 10800",
                                    "-a -u 10.96.0.10:53 -r 10.244.0.4:53 -m -w 1"]
    assert "create KUBE-CLUSTER-IP hash:ip,port -exist" in sets.splitlines()
    assert "add KUBE-CLUSTER-IP 10.96.0.10,udp:53 -exist" in sets.splitlines()
    assert addresses == "address add 10.96.0.10/32 dev kube-ipvs0"


def test_a_change_adds_and_removes_only_what_changed():
    before = ipvs.render([WEB, DNS], "192.168.1.11")
    scaled = dataclasses.replace(WEB, endpoints=(("10.244.0.5", 8080),))
    virtual, sets, addresses = ipvs.commands(before, ipvs.render([scaled, DNS], "192.168.1.11"))
    assert sorted(virtual.splitlines()) == sorted(
        f"-d -t {vip} -r 10.244.1.5:8080" for vip in
        ("10.96.0.11:80", "192.168.1.240:80", "192.168.1.11:30080"))
    assert sets == "del KUBE-LOOP-BACK 10.244.1.5,tcp:8080,10.244.1.5 -exist"
    assert addresses == ""
    virtual, _, addresses = ipvs.commands(before, ipvs.render([DNS], "192.168.1.11"))
    assert "-D -t 10.96.0.11:80" in virtual.splitlines()
    assert "address del 192.168.1.240/32 dev kube-ipvs0" in addresses.splitlines()


def test_the_fixed_rules_match_sets_not_services():
    rules = ipvs.nat_rules("10.244.0.0/16")
    assert "-m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ" in rules
    assert "-A KUBE-SERVICES ! -s 10.244.0.0/16" in rules
    assert "KUBE-LOOP-BACK dst,dst,src -j MASQUERADE" in rules


def test_sctp_services_use_ipvsadms_sctp_flag_and_kube_proxys_hash_set():
    sctp = ServicePort("x", "s", "p", "sctp", "10.96.0.12", 80, 30081, False,
                       (("10.244.0.5", 80),))
    st = ipvs.render([sctp], "192.168.1.11")
    assert st.sets["KUBE-NODE-PORT-SCTP-HASH"] == {"192.168.1.11,sctp:30081"}
    virtual, sets, _ = ipvs.commands(None, st)
    assert "-A --sctp-service 10.96.0.12:80 -s rr" in virtual.splitlines()
    assert "-a --sctp-service 192.168.1.11:30081 -r 10.244.0.5:80 -m -w 1" in virtual
    assert "create KUBE-NODE-PORT-SCTP-HASH hash:ip,port -exist" in sets
    assert "KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ" in ipvs.nat_rules("10.244.0.0/16")


def test_the_fixed_filter_rules_are_kube_proxys():
    lines = ipvs.nat_rules("10.244.0.0/16").splitlines()
    assert lines[0] == "*filter" and lines.index("*nat") > lines.index("COMMIT")
    assert {line[1:].split()[0] for line in lines[:8] if line.startswith(":")} == \
        set(ipvs.FILTER_CHAINS)
    assert lines[-2:] == ["-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000", "COMMIT"]
    assert "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS " \
        "dst -j REJECT" in lines
    assert "-A KUBE-SOURCE-RANGES-FIREWALL -j DROP" in lines
    assert not any("INVALID" in line for line in lines)  # the IPVS mode has no such rule
    assert ("INPUT", '-m comment --comment "kubernetes ipvs access filter" -j '
            "KUBE-IPVS-FILTER") in ipvs.FILTER_JUMPS


def test_source_ranges_health_checks_and_local_policies_fill_kube_proxys_sets():
    lb = dataclasses.replace(WEB, source_ranges=("203.0.113.0/25",), health_check_node_port=30100,
                             external_local=True, endpoints=(
                                 Endpoint("10.244.0.5", 8080, "node1"),
                                 Endpoint("10.244.1.5", 8080, "node2")))
    st = ipvs.render([lb], "192.168.1.11", "node1")
    assert st.sets["KUBE-LOAD-BALANCER-FW"] == {"192.168.1.240,tcp:80"}
    assert st.sets["KUBE-LOAD-BALANCER-SOURCE-CIDR"] == {"192.168.1.240,tcp:80,203.0.113.0/25"}
    assert st.sets["KUBE-HEALTH-CHECK-NODE-PORT"] == {"30100"}
    assert st.sets["KUBE-IPVS-IPS"] == {"10.96.0.11", "192.168.1.240"}
    assert st.virtual[("tcp", "192.168.1.240", 80)][1] == {("10.244.0.5", 8080)}  # node1's
    assert len(st.virtual[("tcp", "10.96.0.11", 80)][1]) == 2  # internal: Cluster
    elsewhere = ipvs.render([lb], "192.168.1.13", "node3")  # none local: all, as kube-proxy
    assert len(elsewhere.virtual[("tcp", "192.168.1.240", 80)][1]) == 2


def test_topology_hints_keep_the_real_servers_in_the_zone():
    sp = dataclasses.replace(WEB, topology_auto=True, endpoints=(
        Endpoint("10.244.0.5", 8080, "node1", "rack1"),
        Endpoint("10.244.1.5", 8080, "node3", "rack2")))
    st = ipvs.render([sp], "192.168.2.11", "node3", "rack2")
    assert st.virtual[("tcp", "10.96.0.11", 80)][1] == {("10.244.1.5", 8080)}


WEB6 = ServicePort("shop", "web", "http", "tcp", "fd00:10:96::b", 80, 30080, False,
                   (("fd00:10:244::5", 8080),), family="IPv6")


def test_the_ipv6_proxier_writes_kube_6_sets_bracketed_servers_and_128s():
    virtual, sets, addresses = ipvs.commands(
        None, ipvs.render([WEB6], "fd00:192:168:1::11"), "IPv6")
    assert "-A -t [fd00:10:96::b]:80 -s rr" in virtual.splitlines()
    assert "-a -t [fd00:10:96::b]:80 -r [fd00:10:244::5]:8080 -m -w 1" in virtual.splitlines()
    assert "-A -t [fd00:192:168:1::11]:30080 -s rr" in virtual.splitlines()  # NodePort
    lines = sets.splitlines()
    assert "create KUBE-6-CLUSTER-IP hash:ip,port family inet6 -exist" in lines
    assert "create KUBE-6-NODE-PORT-TCP bitmap:port range 0-65535 -exist" in lines
    # kube-proxy's prefix, cut at ipset's 31 characters
    assert "create KUBE-6-LOAD-BALANCER-SOURCE-CID hash:ip,port,net family inet6 -exist" in lines
    assert "add KUBE-6-CLUSTER-IP fd00:10:96::b,tcp:80 -exist" in lines
    assert "add KUBE-6-LOOP-BACK fd00:10:244::5,tcp:8080,fd00:10:244::5 -exist" in lines
    assert not any(" KUBE-CLUSTER-IP " in line for line in lines)
    assert addresses == "address add fd00:10:96::b/128 dev kube-ipvs0"


def test_the_ipv6_rules_match_the_kube_6_sets_and_keep_the_chain_names():
    rules = ipvs.nat_rules("fd00:10:244::/56", "IPv6")
    assert "-A KUBE-SERVICES ! -s fd00:10:244::/56" in rules
    assert "--match-set KUBE-6-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ" in rules
    assert "-A KUBE-SERVICES -m set --match-set KUBE-6-LOAD-BALANCER dst,dst " \
        "-j KUBE-LOAD-BALANCER" in rules  # the set renamed, the chain not
    assert ":KUBE-LOAD-BALANCER - [0:0]" in rules
    assert "--match-set KUBE-CLUSTER-IP " not in rules
    v4 = ipvs.nat_rules("10.244.0.0/16")
    assert "--match-set KUBE-CLUSTER-IP dst,dst" in v4 and "KUBE-6-" not in v4
