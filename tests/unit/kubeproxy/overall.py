"""The set of Services kube-proxy's own tests render rule by rule (TestOverallIPTablesRules,
TestOverallNFTablesRules), in their addresses, so that our chain names can be checked against
the names kube-proxy computes for them: a ClusterIP, a LoadBalancer with
externalTrafficPolicy Local whose endpoint is on another node, a NodePort, a Service with an
external IP, a LoadBalancer with source ranges and ClientIP affinity, and a ClusterIP with no
endpoints. Pods are 10.0.0.0/8, the node is test-node at 192.168.0.2."""
from testbed.kubeproxy.types import Endpoint, ServicePort

POD_CIDR = "10.0.0.0/8"
NODE, NODE_IP = "test-node", "192.168.0.2"


def port(ns, endpoints, **fields):
    base = dict(namespace=ns, name=ns.replace("ns", "svc"), port_name="p80", protocol="tcp",
                cluster_ip=f"172.30.0.4{ns[-1]}", port=80, node_port=0, affinity=False,
                endpoints=endpoints)
    return ServicePort(**{**base, **fields})


SERVICES = [
    port("ns1", (("10.180.0.1", 80),)),
    port("ns2", (("10.180.0.2", 80),), node_port=3001, load_balancer_ips=("1.2.3.4",),
         external_ips=("192.168.99.22",), external_local=True, health_check_node_port=30000),
    port("ns3", (("10.180.0.3", 80),), node_port=3003),
    port("ns4", (Endpoint("10.180.0.5", 80, NODE), ("10.180.0.4", 80)),
         external_ips=("192.168.99.33",)),
    port("ns5", (("10.180.0.3", 80),), node_port=3002, load_balancer_ips=("5.6.7.8",),
         source_ranges=("203.0.113.0/25",), affinity=True),
    port("ns6", ()),
]
