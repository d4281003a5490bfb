"""The cluster.local zone the testbed's DNS server loads, from a run's state."""
from testbed.addons import dns

from ..states import state_from

STATE = state_from({
    "pods": {
        "web-1": {"namespace": "shop", "ip": "10.244.0.5", "labels": {"app": "web"},
                  "ports": {"http": 8080}},
        "web-2": {"namespace": "shop", "ip": "10.244.1.5", "labels": {"app": "web"},
                  "ports": {"http": 8080}},
        "other": {"namespace": "default", "ip": "10.244.1.6", "labels": {"app": "web"}},
    },
    "services": {
        "shop/web": {"type": "ClusterIP", "cluster_ip": "10.96.0.11", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "target_port": "http",
                                "protocol": "TCP", "node_port": 0}], "external_name": ""},
        "shop/web-hl": {"type": "ClusterIP", "cluster_ip": "None", "selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 8080, "target_port": 8080,
                                   "protocol": "TCP", "node_port": 0}], "external_name": ""},
        "default/db": {"type": "ExternalName", "cluster_ip": "", "selector": {}, "ports": [],
                       "external_name": "db.example.org"},
    },
})


def records(zone):
    return {tuple(line.split()) for line in zone.splitlines()}


def test_services_resolve_as_kubernetes_dns_specifies():
    got = records(dns.render_zone(STATE, 7))
    assert ("web.shop.svc", "IN", "A", "10.96.0.11") in got
    assert ("_http._tcp.web.shop.svc", "IN", "SRV", "0", "100", "80",
            "web.shop.svc.cluster.local.") in got
    # headless: the pods' own addresses (same namespace only), and an SRV per endpoint
    assert {r for r in got if r[0] == "web-hl.shop.svc"} == {
        ("web-hl.shop.svc", "IN", "A", "10.244.0.5"), ("web-hl.shop.svc", "IN", "A", "10.244.1.5")}
    assert ("_http._tcp.web-hl.shop.svc", "IN", "SRV", "0", "50", "8080",
            "10-244-1-5.web-hl.shop.svc.cluster.local.") in got
    assert ("10-244-1-5.web-hl.shop.svc", "IN", "A", "10.244.1.5") in got
    assert ("db.default.svc", "IN", "CNAME", "db.example.org.") in got
    assert ("10-244-1-6.default.pod", "IN", "A", "10.244.1.6") in got


def test_reverse_names_and_the_schema_version_answer_as_the_specification_says():
    got = records(dns.render_reverse_zone(STATE, 7))
    assert dns.reverse_name("10.96.0.11") == "11.0.96.10"
    assert ("11.0.96.10", "IN", "PTR", "web.shop.svc.cluster.local.") in got
    # a headless Service's endpoints: their own names under the Service
    assert ("5.1.244.10", "IN", "PTR", "10-244-1-5.web-hl.shop.svc.cluster.local.") in got
    assert not any(r[0] == "6.1.244.10" for r in got)  # selected by no Service of its namespace
    assert sum(1 for r in got if "PTR" in r) == 3
    assert ("dns-version", "IN", "TXT", '"1.1.0"') in records(dns.render_zone(STATE, 7))
    assert 'name: "in-addr.arpa"' in dns.render_config("/d")


def test_a_pod_with_hostname_and_subdomain_is_named_by_them_under_its_headless_service():
    state = state_from({
        "pods": {"busy-1": {"namespace": "shop", "ip": "10.244.0.7", "labels": {"app": "b"},
                            "dns": {"hostname": "busy-1", "subdomain": "busy"}},
                 "busy-2": {"namespace": "shop", "ip": "10.244.0.8", "labels": {"app": "b"},
                            "dns": {"hostname": "busy-2", "subdomain": "elsewhere"}}},
        "services": {"shop/busy": {"type": "ClusterIP", "cluster_ip": "None",
                                   "selector": {"app": "b"}, "external_name": "",
                                   "ports": [{"name": "foo", "port": 1234, "target_port": 1234,
                                              "protocol": "TCP", "node_port": 0}]}},
    })
    got = records(dns.render_zone(state, 1))
    assert ("busy-1.busy.shop.svc", "IN", "A", "10.244.0.7") in got
    assert ("10-244-0-8.busy.shop.svc", "IN", "A", "10.244.0.8") in got  # another subdomain
    assert ("_foo._tcp.busy.shop.svc", "IN", "SRV", "0", "50", "1234",
            "busy-1.busy.shop.svc.cluster.local.") in got
    assert ("7.0.244.10", "IN", "PTR", "busy-1.busy.shop.svc.cluster.local.") in \
        records(dns.render_reverse_zone(state, 1))


def test_the_zone_carries_its_serial_and_the_server_address():
    zone = dns.render_zone(STATE, 42)
    soa = next(line for line in zone.splitlines() if " SOA " in line).split()
    assert soa[5] == "42"
    assert "ns.dns IN A 10.96.0.10" in zone


def test_resolv_conf_is_the_kubelets():
    assert dns.resolv_conf("shop") == ("search shop.svc.cluster.local svc.cluster.local "
                                       "cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n")


DUAL = state_from({
    "ip_family": "dual",
    "pods": {"shop/web-1": {"ip": "10.244.0.5", "ips": ["10.244.0.5", "fd00:10:244::5"],
                            "labels": {"app": "web"}}},
    "services": {
        "shop/web": {"type": "ClusterIP", "cluster_ip": "10.96.0.11", "selector": {"app": "web"},
                     "cluster_ips": ["10.96.0.11", "fd00:10:96::b"],
                     "ip_families": ["IPv4", "IPv6"],
                     "ports": [{"port": 80, "target_port": 80}]},
        "shop/six": {"type": "ClusterIP", "cluster_ip": "fd00:10:96::c",
                     "cluster_ips": ["fd00:10:96::c"], "ip_families": ["IPv6"],
                     "selector": {"app": "web"}, "ports": [{"port": 80, "target_port": 80}]},
        "shop/hl": {"type": "ClusterIP", "cluster_ip": "None", "selector": {"app": "web"},
                    "ip_families": ["IPv4", "IPv6"], "ports": [{"port": 80, "target_port": 80}]},
    },
})


def test_dual_stack_names_answer_a_and_aaaa_and_reverse_in_ip6_arpa():
    got = records(dns.render_zone(DUAL, 3))
    assert {r for r in got if r[0] == "web.shop.svc"} == {
        ("web.shop.svc", "IN", "A", "10.96.0.11"), ("web.shop.svc", "IN", "AAAA", "fd00:10:96::b")}
    assert {r for r in got if r[0] == "six.shop.svc"} == {
        ("six.shop.svc", "IN", "AAAA", "fd00:10:96::c")}
    assert ("fd00-10-244--5.shop.pod", "IN", "AAAA", "fd00:10:244::5") in got
    assert ("hl.shop.svc", "IN", "AAAA", "fd00:10:244::5") in got
    assert ("hl.shop.svc", "IN", "A", "10.244.0.5") in got
    six = records(dns.render_reverse_zone(DUAL, 3, dns.REVERSE6))
    assert ("c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f", "IN", "PTR",
            "six.shop.svc.cluster.local.") in six
    assert not any("10.96" in " ".join(r) for r in six)
    four = records(dns.render_reverse_zone(DUAL, 3))
    assert ("11.0.96.10", "IN", "PTR", "web.shop.svc.cluster.local.") in four
