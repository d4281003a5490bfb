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
