"""NetworkPolicy: parsing, Kubernetes' semantics, and the per-pod nftables chains."""
from pathlib import Path

import pytest

from testbed import manifests
from testbed.manifests.kinds import ManifestError, policy_from_record, policy_to_record
from testbed.policy import nftables as policy_nft
from testbed.policy import semantics as policy

from ..states import state_from

# Kubernetes' documented example: node2's pod subnet excepted, egress to the sink's subnet
DOCS_EXAMPLE = (Path(__file__).parents[1] / "data" / "network-policy-docs-example.yaml") \
    .read_text().replace("EXCEPT_CIDR", "10.244.1.0/24").replace("EGRESS_CIDR", "10.244.2.0/24")


def pod(name, ns, ip, node, labels=None, ports=None, iface=None):
    """(key, record) of a pod as the state holds it."""
    return f"{ns}/{name}", {
        "name": name, "namespace": ns, "ip": ip, "node": node, "labels": labels or {},
        "ports": ports or {}, "netns": f"{name}.{ns}.c1",
        "result": {"interfaces": [{"name": iface or f"cali{ip.split('.')[-1]}"}]}}


def cluster(*docs):
    doc = {
        "nodes": {"node1": {"ip": "192.168.1.11"}, "node2": {"ip": "192.168.1.12"}},
        "namespaces": {"default": {"labels": {}}, "other": {"labels": {"project": "myproject"}},
                       "third": {"labels": {}}},
        "pods": dict([
            pod("db", "default", "10.244.1.5", "node2", {"role": "db"}, {"redis": 6379}),
            pod("frontend", "default", "10.244.1.6", "node2", {"role": "frontend"}),
            pod("plain", "default", "10.244.0.7", "node1"),
            pod("remote", "default", "10.244.1.8", "node2"),
            pod("mine", "other", "10.244.1.9", "node2"),
            pod("stranger", "third", "10.244.1.10", "node2", {"role": "frontend"}),
            pod("sink", "default", "10.244.2.4", "node1", ports={"api": 5978}),
        ]),
    }
    return state_from(doc, [obj for text in docs for obj in manifests.parse(text).objects])


def allowed(state, src, dst, port, proto="TCP"):
    ips = {rec.name: rec.ip for rec in state.pods.values()}
    return policy.explain(state, ips.get(src, src), ips.get(dst, dst), port, proto)[0]


def test_the_documentation_example_admits_exactly_what_it_says():
    data = cluster(DOCS_EXAMPLE)
    assert allowed(data, "frontend", "db", 6379)      # podSelector
    assert allowed(data, "mine", "db", 6379)          # namespaceSelector project=myproject
    assert allowed(data, "plain", "db", 6379)         # ipBlock 10.244.0.0/16 ...
    assert not allowed(data, "remote", "db", 6379)    # ... except 10.244.1.0/24
    assert not allowed(data, "stranger", "db", 6379)  # role=frontend, but another namespace
    assert not allowed(data, "frontend", "db", 6380)  # other port
    assert not allowed(data, "frontend", "db", 6379, "UDP")
    assert allowed(data, "db", "sink", 5978)          # egress to the block on its port
    assert not allowed(data, "db", "plain", 5978)     # egress elsewhere
    assert not allowed(data, "db", "sink", 5979)
    assert allowed(data, "plain", "frontend", 1234)   # frontend is not selected: not isolated
    assert allowed(data, "192.168.1.12", "db", 22)    # the pod's own node, always


def test_defaults_deny_all_and_allow_all():
    deny_ingress = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                    "metadata: {name: default-deny-ingress}\nspec: {podSelector: {}}\n")
    data = cluster(deny_ingress)
    rec = data.policies["default/default-deny-ingress"].policy
    assert rec.policy_types == ("Ingress",)  # no policyTypes, no egress rules: Ingress
    assert not allowed(data, "plain", "frontend", 80)
    assert allowed(data, "frontend", "mine", 80)  # other namespace: not isolated
    allow_all = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                 "metadata: {name: allow-all-ingress}\n"
                 "spec: {podSelector: {}, ingress: [{}], policyTypes: [Ingress]}\n")
    assert allowed(cluster(deny_ingress, allow_all), "plain", "frontend", 80)  # additive
    deny_egress = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                   "metadata: {name: default-deny-egress}\n"
                   "spec: {podSelector: {}, policyTypes: [Egress]}\n")
    data = cluster(deny_egress)
    assert not allowed(data, "plain", "mine", 80) and allowed(data, "mine", "plain", 80)


def test_expressions_named_ports_and_port_ranges():
    doc = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-access}
spec:
  podSelector: {matchExpressions: [{key: role, operator: In, values: [db, cache]}]}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}
      podSelector: {}
    ports: [{port: redis}, {port: 7000, endPort: 7100, protocol: UDP}]
"""
    data = cluster(doc)
    assert allowed(data, "mine", "db", 6379)  # named port of the db pod
    assert allowed(data, "mine", "db", 7050, "UDP") and not allowed(data, "mine", "db", 7050)
    assert not allowed(data, "frontend", "db", 6379)  # both selectors: only namespace other


def test_explanations_name_the_policy_and_rule():
    ok, lines = policy.explain(cluster(DOCS_EXAMPLE), "10.244.1.6", "10.244.1.5", 6379)
    assert ok and "allowed by default/test-network-policy ingress[0]" in lines[-1]
    ok, lines = policy.explain(cluster(DOCS_EXAMPLE), "10.244.1.8", "10.244.1.5", 6379)
    assert not ok and "isolated by test-network-policy; no rule allows 10.244.1.8" in lines[-1]


@pytest.mark.parametrize("text, words", [
    ("spec: {}", "spec.podSelector: missing"),
    ("spec: {podSelector: {}, policyTypes: [Inbound]}", "'Inbound' is not Ingress or Egress"),
    ("spec: {podSelector: {matchExpressions: [{key: a, operator: In}]}}", "need values"),
    ("spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: "
     "[11.0.0.0/8]}}]}]}", "is not inside cidr 10.0.0.0/8"),
    ("spec: {podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}",
     "needs a numeric port"),
])
def test_bad_policies_name_file_line_and_field(text, words):
    with pytest.raises(ManifestError) as err:
        manifests.parse("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                        f"metadata: {{name: p}}\n{text}\n", "pol.yaml")
    assert str(err.value).startswith("pol.yaml:") and words in str(err.value)


def test_records_round_trip():
    obj = manifests.parse(DOCS_EXAMPLE).objects[0]
    assert policy_from_record(policy_to_record(obj)) == obj.__class__(
        **{**obj.__dict__, "source": ""})


def test_nft_chains_for_an_isolated_pod():
    text = policy_nft.render(cluster(DOCS_EXAMPLE), "node2", "routed",
                             ["192.168.1.12", "10.244.1.1"])
    assert text.startswith("table ip calico {}\ndelete table ip calico\n")
    assert '"cali5" : jump cali-tw-cali5' in text and '"cali5" : jump cali-fw-cali5' in text
    assert "ip saddr { 10.244.1.1, 192.168.1.12 } return" in text  # own node
    inbound = text.split("chain cali-pi-cali5-default/test-network-policy {")[1].split("}\n")[0]
    assert "ip saddr 10.244.0.0/16 ip saddr != { 10.244.1.0/24 } meta l4proto tcp " \
           "th dport { 6379 } meta mark set meta mark | 0x10000 return" in inbound
    assert "ip saddr { 10.244.1.9 } meta l4proto tcp th dport { 6379 }" in inbound
    assert "ip saddr { 10.244.1.6 } meta l4proto tcp" in inbound
    assert "ct state established,related accept" in text
    # node1 has no isolated pod: its table only accepts
    assert "vmap" not in policy_nft.render(cluster(DOCS_EXAMPLE), "node1", "routed", [])
    bridged = policy_nft.render(cluster(DOCS_EXAMPLE), "node2", "bridged", [])
    assert "ip daddr vmap { 10.244.1.5 : jump cali-tw-cali5 }" in bridged


def test_an_egress_named_port_is_the_destination_pods_own():
    doc = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-api}
spec:
  podSelector: {matchLabels: {role: frontend}}
  policyTypes: [Egress]
  egress: [{ports: [{port: api}]}]
"""
    data = cluster(doc)
    assert allowed(data, "frontend", "sink", 5978)      # sink names 5978 "api"
    assert not allowed(data, "frontend", "db", 5978)    # db has no port of that name
    text = policy_nft.render(data, "node2", "routed", [])
    assert "ip daddr 10.244.2.4 meta l4proto tcp th dport { 5978 } meta mark set" in text
    # no rule for pods without the name (the others: the drop sets' key and the drop rule)
    assert text.count("th dport {") == 1


SCTP_ONLY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-only-sctp-ingress-on-port-80}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress]
  ingress: [{ports: [{protocol: SCTP, port: 80}]}]
"""


def test_a_policy_allowing_only_sctp_isolates_for_tcp_and_udp():
    data = cluster(SCTP_ONLY)
    assert allowed(data, "frontend", "db", 80, "SCTP")
    assert not allowed(data, "frontend", "db", 80) and not allowed(data, "frontend", "db", 80,
                                                                    "UDP")
    text = policy_nft.render(data, "node2", "routed", [])
    assert "meta l4proto sctp th dport { 80 } meta mark set meta mark | 0x10000 return" in text
    assert "meta l4proto tcp" not in text and '"cali5" : jump cali-tw-cali5' in text


def test_explanations_name_pods_by_namespace_and_name():
    lines = policy.explain(cluster(SCTP_ONLY), "10.244.1.9", "10.244.1.5", 80)[1]
    assert lines == [
        "egress: no policy selects other/mine for Egress: not isolated, allowed",
        "ingress: default/db is isolated by allow-only-sctp-ingress-on-port-80; no rule allows "
        "10.244.1.9 on TCP 80: denied"]


def test_an_ip_block_with_host_bits_means_the_masked_network():
    text = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n"
            "spec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: "
            "{cidr: 10.244.0.1/4, except: [10.244.1.7/24]}\n")
    parsed = manifests.parse(text, "p.yaml")
    peer = parsed.objects[0].ingress[0].peers[0]
    assert (peer.cidr, peer.excepts) == ("0.0.0.0/4", ("10.244.1.0/24",))
    assert parsed.warnings == [
        "p.yaml:8: NetworkPolicy default/p: spec.ingress[0].from[0].ipBlock.cidr: "
        "'10.244.0.1/4' has host bits set: it means 0.0.0.0/4",
        "p.yaml:8: NetworkPolicy default/p: spec.ingress[0].from[0].ipBlock.except[0]: "
        "'10.244.1.7/24' has host bits set: it means 10.244.1.0/24"]



V6_BLOCK = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: v6-only}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from: [{ipBlock: {cidr: "fd00:10:244::/64", except: ["fd00:10:244::7/128"]}},
           {podSelector: {matchLabels: {role: frontend}}}]
"""


def dual_cluster():
    data = cluster(V6_BLOCK)
    for rec in data.pods.values():  # a second address each: fd00:10:244:<node>::<host>
        subnet = int(rec.ip.split(".")[2])
        rec.ips = [rec.ip, f"fd00:10:244:{subnet:x}::{rec.ip.split('.')[3]}"]
    return data


def test_an_ipv6_ip_block_admits_its_family_only_and_policy_check_says_so():
    data = dual_cluster()
    assert policy.explain(data, "fd00:10:244::8", "fd00:10:244:1::5", 6379)[0]  # in the block
    assert not policy.explain(data, "fd00:10:244::7", "fd00:10:244:1::5", 6379)[0]  # except
    assert not policy.explain(data, "10.244.0.8", "10.244.1.5", 6379)[0]  # IPv4: no block
    # a selector peer admits the frontend over either family
    assert policy.explain(data, "fd00:10:244:1::6", "fd00:10:244:1::5", 6379)[0]
    assert policy.explain(data, "10.244.1.6", "10.244.1.5", 6379)[0]


def test_the_nftables_chains_come_per_family():
    data = dual_cluster()
    v4 = policy_nft.chains(data, "node2", "routed", ["192.168.1.12"])
    v6 = policy_nft.chains(data, "node2", "routed", ["192.168.1.12", "fd00:192:168:1::12"],
                           "IPv6")
    rules4 = v4["cali-pi-cali5-default/v6-only"]
    rules6 = v6["cali-pi-cali5-default/v6-only"]
    assert not any("fd00:10:244::/64" in r for r in rules4)
    assert any(r.startswith("ip6 saddr fd00:10:244::/64 ip6 saddr != { fd00:10:244::7/128 }")
               for r in rules6)
    assert any(r.startswith("ip6 saddr { fd00:10:244:1::6 }") for r in rules6)  # its namespace
    assert v6["cali-tw-cali5"][0] == "ip6 saddr { fd00:192:168:1::12 } return"
    assert "ip6 saddr . ip6 daddr . meta l4proto . th dport" in v6["cali-tw-cali5"][-1]
    assert v4["cali-tw-cali5"][0] == "ip saddr { 192.168.1.12 } return"
    assert "table ip6 calico {" in policy_nft.full_table(v6, "IPv6")
