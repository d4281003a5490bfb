"""What the kubelet gives a pod for name resolution and service discovery: resolv.conf by
dnsPolicy and dnsConfig, and the Services' environment variables."""
from testbed.kubelet.dns import node_resolv_conf, parse_resolv_conf, pod_resolv_conf
from testbed.kubelet.service_env import service_env
from testbed.model.records import ServicePortRecord, ServiceRecord

NODE = "search corp.example\nnameserver 192.168.1.1\noptions timeout:2\n"


def conf(dns, node=NODE):
    return pod_resolv_conf(dns, "shop", "10.96.0.10", "cluster.local", node)


def test_cluster_first_appends_the_nodes_search_domains():
    assert conf({}) == ("search shop.svc.cluster.local svc.cluster.local cluster.local "
                        "corp.example\nnameserver 10.96.0.10\noptions ndots:5\n")
    assert conf({"policy": "ClusterFirstWithHostNet"}) == conf({})


def test_a_host_network_pod_gets_cluster_dns_only_when_it_asks():
    assert conf({"host_network": True}) == NODE
    assert conf({"host_network": True, "policy": "ClusterFirstWithHostNet"}) == conf({})


def test_default_is_the_nodes_and_none_only_dns_config():
    assert conf({"policy": "Default"}) == NODE
    assert conf({"policy": "None", "nameservers": ["1.2.3.4"], "searches": ["ns1.svc"],
                 "options": [["ndots", "2"], ["edns0", None]]}) == (
        "search ns1.svc\nnameserver 1.2.3.4\noptions ndots:2 edns0\n")


def test_dns_config_merges_as_the_kubelet_merges_it():
    merged = conf({"nameservers": ["10.96.0.10", "1.2.3.4", "5.6.7.8", "9.9.9.9"],
                   "searches": ["svc.cluster.local", "my.dns.search.suffix"],
                   "options": [["ndots", "2"], ["edns0", None]]})
    lines = merged.splitlines()
    # duplicates dropped, at most three servers, options replaced by name
    assert lines[0] == ("search shop.svc.cluster.local svc.cluster.local cluster.local "
                        "corp.example my.dns.search.suffix")
    assert lines[1:4] == ["nameserver 10.96.0.10", "nameserver 1.2.3.4", "nameserver 5.6.7.8"]
    assert lines[4] == "options ndots:2 edns0"


def test_an_emulated_nodes_resolv_conf_names_its_gateway():
    assert parse_resolv_conf(node_resolv_conf("192.168.2.1")) == (["192.168.2.1"], [], [])


SERVICES = {
    "shop/web": ServiceRecord("ClusterIP", "10.96.0.11", {"app": "web"}, [
        ServicePortRecord(80, 8080, "http"), ServicePortRecord(53, 53, "dns-udp", 0, "UDP")]),
    "shop/redis-primary": ServiceRecord("ClusterIP", "10.96.0.12", {}, [
        ServicePortRecord(6379, 6379)]),
    "shop/peers": ServiceRecord("ClusterIP", "None", {}, [ServicePortRecord(80, 80)]),
    "other/web": ServiceRecord("ClusterIP", "10.96.0.13", {}, [ServicePortRecord(80, 80)]),
    "default/kubernetes": ServiceRecord("ClusterIP", "10.96.0.1", {}, [
        ServicePortRecord(443, 6443, "https")]),
}


def test_service_links_as_docker_links_and_the_api_servers_always():
    env = dict(service_env(SERVICES, "shop"))
    assert env["WEB_SERVICE_HOST"] == "10.96.0.11" and env["WEB_SERVICE_PORT"] == "80"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80" and env["WEB_SERVICE_PORT_DNS_UDP"] == "53"
    assert env["WEB_PORT"] == "tcp://10.96.0.11:80"
    assert env["WEB_PORT_53_UDP"] == "udp://10.96.0.11:53"
    assert (env["WEB_PORT_53_UDP_PROTO"], env["WEB_PORT_53_UDP_PORT"],
            env["WEB_PORT_53_UDP_ADDR"]) == ("udp", "53", "10.96.0.11")
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == "10.96.0.12"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    assert not any(k.startswith("PEERS_") for k in env)  # headless: none
    assert env["WEB_SERVICE_HOST"] != "10.96.0.13"  # another namespace's web: not this one's
    off = dict(service_env(SERVICES, "shop", links=False))
    assert set(k.split("_")[0] for k in off) == {"KUBERNETES"}
