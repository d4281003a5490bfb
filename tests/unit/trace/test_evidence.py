"""What the trace reads from the kernel's tables, parsed from their own text: conntrack
entries, NetworkPolicy drop counters, kube-proxy's DNAT chains, routes, OVS's trace."""
from testbed.trace import evidence
from testbed.trace.tracer import Place
from testbed.underlay import ovs

CONNTRACK = """\
ipv4     2 tcp      6 431999 ESTABLISHED src=192.168.1.11 dst=192.168.1.12 sport=33579 \
dport=179 src=192.168.1.12 dst=192.168.1.11 sport=179 dport=33579 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 101 SYN_SENT src=10.244.0.0 dst=10.96.0.2 sport=34124 dport=80 \
[UNREPLIED] src=10.244.0.66 dst=10.244.0.0 sport=8080 dport=34124 mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=10.244.0.2 dst=10.244.1.2 sport=34124 dport=9 [UNREPLIED] \
src=10.244.1.2 dst=10.244.0.2 sport=9 dport=34124 mark=0 zone=0 use=2
"""

CALICO = """\
table ip calico {
\tchain cali-pi-cali490db865ec4-shop/deny-web-ingress {
\t}

\tchain cali-tw-cali490db865ec4 {
\t\tip saddr 192.168.1.11 return
\t\tmeta mark set meta mark & 0xfffeffff
\t\tjump cali-pi-cali490db865ec4-shop/deny-web-ingress
\t\tmeta mark & 0x00010000 == 0x00010000 return
\t\tcounter packets 3 bytes 180 drop comment "shop/web-1: no policy allows this ingress"
\t}
}
"""

IPTABLES = """\
*nat
-A KUBE-SERVICES -d 10.96.0.2/32 -p tcp -m comment --comment "shop/web cluster IP" \
-m tcp --dport 80 -j KUBE-SVC-E3PXEPMWAWIUT6ZV
-A KUBE-SVC-E3PXEPMWAWIUT6ZV -m comment --comment "shop/web -> 10.244.0.5:8080" \
-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-4PCKNL7CLNOJZMVX
-A KUBE-SEP-4PCKNL7CLNOJZMVX -p tcp -m comment --comment shop/web -m tcp \
-j DNAT --to-destination 10.244.0.5:8080
COMMIT
"""

NFT = """\
table ip kube-proxy {
\tchain endpoint-2RXN5VAI-shop/web/tcp/__10.244.0.5/8080 {
\t\tip saddr 10.244.0.5 jump mark-for-masquerade
\t\tmeta l4proto tcp dnat to 10.244.0.5:8080
\t}
}
"""


def place_printing(tmp_path, text, label="node1"):
    """A namespace whose every command prints `text` (the tables above)."""
    path = tmp_path / f"{label}.txt"
    path.write_text(text)
    return Place(label, lambda argv: ["cat", str(path)], "node")


def test_conntrack_entries_are_read_per_protocol(tmp_path):
    place = place_printing(tmp_path, CONNTRACK)
    tcp = evidence.conntrack_entries(place, "tcp")
    assert [e["state"] for e in tcp] == ["ESTABLISHED", "SYN_SENT"] and tcp[1]["unreplied"]
    assert tcp[1]["original"]["dst"] == "10.96.0.2"
    assert (tcp[1]["reply"]["src"], tcp[1]["reply"]["sport"]) == ("10.244.0.66", "8080")
    (udp,) = evidence.conntrack_entries(place, "udp")
    assert udp["state"] == "" and udp["reply"]["sport"] == "9"
    known, found = evidence.probe_tuples({"node1": tcp}, 34124, "10.96.0.2", 80)
    assert ("10.244.0.0", 34124, "10.244.0.66", 8080) in known  # the DNATed packet
    assert found["node1"] is tcp[1]


def test_a_drop_counter_that_rose_names_the_chain_and_the_policies(tmp_path):
    place = place_printing(tmp_path, CALICO)
    before = {("node1", "cali-tw-cali490db865ec4"): (1, [], "")}
    rose = evidence.rises(before, evidence.policy_drops([place]))
    assert rose == [("node1", "cali-tw-cali490db865ec4", ["shop/deny-web-ingress"],
                     "shop/web-1: no policy allows this ingress")]
    assert evidence.rises(evidence.policy_drops([place]), evidence.policy_drops([place])) == []


def test_the_dnat_chain_is_named_in_iptables_and_nftables(tmp_path):
    assert evidence.dnat_chain(place_printing(tmp_path, IPTABLES), "10.244.0.5:8080") == \
        "iptables KUBE-SVC-E3PXEPMWAWIUT6ZV -> KUBE-SEP-4PCKNL7CLNOJZMVX"
    assert evidence.dnat_chain(place_printing(tmp_path, NFT), "10.244.0.5:8080") == \
        "nftables chain endpoint-2RXN5VAI-shop/web/tcp/__10.244.0.5/8080"
    assert evidence.dnat_chain(place_printing(tmp_path, NFT), "10.244.9.9:80") == \
        "no kube-proxy rule found for it"


def test_the_most_specific_route_wins_and_its_neighbour_is_asked(tmp_path):
    routes = ("default via 192.168.1.1 dev eth0\n10.244.0.0/16 via 10.244.0.1 dev eth0\n"
              "blackhole 10.244.1.0/26 proto bird\n"
              "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink\n")
    place = place_printing(tmp_path, routes)
    assert evidence.route(place, "10.244.1.2") == "blackhole 10.244.1.0/26 proto bird"
    without = routes.replace("blackhole 10.244.1.0/26 proto bird\n", "")
    chosen = evidence.route(place_printing(tmp_path, without, "node2"), "10.244.1.2")
    assert chosen == "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink"
    assert evidence.neighbour(place_printing(tmp_path, "10.244.1.0 lladdr f2:63 PERMANENT\n"),
                              chosen) == "10.244.1.0 lladdr f2:63 PERMANENT"
    assert evidence.neighbour(place, "10.244.1.0/24 dev cni0 scope link") is None


OFPROTO = """\
Flow: tcp,in_port=3,nw_src=10.244.0.2,nw_dst=10.244.1.2

bridge("br-int")
----------------
 0. ip,in_port=3,nw_src=10.244.0.2, priority 100
    goto_table:10
20. ip,nw_dst=10.244.1.0/24, priority 150
    dec_ttl
    set_field:192.168.1.12->tun_dst
    output:2
     -> output to native tunnel
     -> tunneling to 192.168.1.12 via br-phy

Final flow: unchanged
Datapath actions: ct(zone=65520),recirc(0x4)
Datapath actions: tnl_push(vxlan(vni=0x0)),out_port(2)
"""


def test_ofproto_trace_is_summed_up_table_by_table_with_port_names():
    lines = ovs.trace_summary(OFPROTO, {"2": "tun0", "3": "of20a2ad68006"})
    assert lines[0] == ("br-int table 0: ip,in_port=of20a2ad68006,nw_src=10.244.0.2, "
                        "priority 100 -> goto_table:10")
    assert lines[1].startswith("br-int table 20: ip,nw_dst=10.244.1.0/24") and \
        lines[1].endswith("output:tun0")
    assert "  tunneling to 192.168.1.12 via br-phy" in lines
    assert lines[-1] == "Datapath actions: tnl_push(vxlan(vni=0x0)),out_port(2)"


def entry(line):
    return evidence.parse_conntrack("ipv4     2 tcp      6 117 TIME_WAIT " + line + " [ASSURED] "
                                    "mark=0 zone=0 use=2")


def test_the_probe_is_followed_through_each_nat_conntrack_made():
    # node1 masquerades the pod to a new port (--random-fully); node2 DNATs the NodePort
    # to a pod on node1 and masquerades it again; node1 then sees that second leg
    node1 = [entry("src=10.244.0.2 dst=192.168.1.12 sport=38358 dport=30000 src=192.168.1.12 "
                   "dst=192.168.1.11 sport=30000 dport=1163"),
             entry("src=10.244.1.0 dst=10.244.0.5 sport=9894 dport=8080 src=10.244.0.5 "
                   "dst=10.244.1.0 sport=8080 dport=9894"),
             entry("src=10.244.0.3 dst=192.168.1.12 sport=5000 dport=30000 src=192.168.1.12 "
                   "dst=192.168.1.11 sport=30000 dport=7")]  # another connection
    node2 = [entry("src=192.168.1.11 dst=192.168.1.12 sport=1163 dport=30000 src=10.244.0.5 "
                   "dst=10.244.1.0 sport=8080 dport=9894")]
    known, found = evidence.probe_tuples({"node1": node1, "node2": node2}, 38358,
                                         "192.168.1.12", 30000)
    assert known == {("10.244.0.2", 38358, "192.168.1.12", 30000),
                     ("192.168.1.11", 1163, "192.168.1.12", 30000),
                     ("10.244.1.0", 9894, "10.244.0.5", 8080)}
    assert found["node2"]["reply"]["src"] == "10.244.0.5"
    assert found["node1"]["original"]["sport"] == "38358"


def test_an_ipv6_conntrack_line_is_read_with_short_addresses():
    from testbed.trace import evidence
    line = ("ipv6     10 tcp      6 117 SYN_SENT src=fd00:0010:0244:0000:0000:0000:0000:0002 "
            "dst=fd00:0010:0096:0000:0000:0000:0000:ba48 sport=40000 dport=80 [UNREPLIED] "
            "src=fd00:0010:0244:0001:0000:0000:0000:0004 "
            "dst=fd00:0010:0244:0000:0000:0000:0000:0002 sport=8080 dport=40000 mark=0 "
            "zone=0 use=2")
    entry = evidence.parse_conntrack(line)
    assert entry["original"] == {"src": "fd00:10:244::2", "dst": "fd00:10:96::ba48",
                                 "sport": "40000", "dport": "80"}
    assert entry["reply"]["src"] == "fd00:10:244:1::4" and entry["unreplied"]
