"""Reading Kubernetes manifests: kinds, fields, warnings and errors with file and line."""
import pytest

from testbed import manifests
from testbed.manifests import kinds
from testbed.manifests.kinds import ManifestError

WEB = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  strategy: {type: RollingUpdate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
        - name: agnhost
          image: registry.k8s.io/e2e-test-images/agnhost:2.47
          args: [netexec, --http-port=8080]
          ports: [{containerPort: 8080, name: http}]
          resources: {limits: {cpu: 100m}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
  sessionAffinity: ClientIP
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
"""


def test_a_multi_document_file_gives_every_kind_and_names_what_is_ignored():
    out = manifests.parse(WEB, "web.yaml")
    ns, deploy, svc = out.objects
    assert (ns.name, ns.labels) == ("shop", {"team": "web"})
    assert (deploy.namespace, deploy.replicas, deploy.selector) == ("shop", 3, {"app": "web"})
    (c,) = deploy.template.containers
    assert c.args == ("netexec", "--http-port=8080") and c.ports[0].name == "http"
    assert (svc.ports[0].target_port, svc.session_affinity, svc.type) == \
        ("http", "ClientIP", "ClusterIP")
    assert out.warnings == [
        "web.yaml:12: Deployment shop/web: spec.strategy: not implemented by the testbed "
        "(ignored)",
        "web.yaml:22: Deployment shop/web: spec.template.spec.containers[0].resources: not "
        "implemented by the testbed (ignored)",
        "web.yaml:33: kind ConfigMap is not implemented by the testbed (the document is "
        "ignored)"]


def test_malformed_yaml_names_file_and_line():
    with pytest.raises(ManifestError) as e:
        manifests.parse("apiVersion: v1\nkind: Pod\nmetadata: {name: [x\n", "bad.yaml")
    assert e.value.path == "bad.yaml" and e.value.line == 4 and "malformed YAML" in str(e.value)


@pytest.mark.parametrize("text, line, words", [
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: Web}\nspec: {containers: []}\n", 3,
     "metadata.name: 'Web' is not a DNS label"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: []\n", 5,
     "spec.containers: must be a non-empty list"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  replicas: three\n"
     "  selector: {matchLabels: {a: b}}\n  template: {}\n", 5,
     "spec.replicas: must be an integer from 0 to 1000"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: Ingress\n", 5,
     "spec.type: 'Ingress' is not one of ClusterIP, NodePort, LoadBalancer, ExternalName"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n"
     "    - {port: 80, nodePort: 30080}\n", 6, "only NodePort and LoadBalancer"),
    ("apiVersion: apps/v1\nkind: Pod\nmetadata: {name: p}\nspec: {}\n", 1,
     "apiVersion: Pod needs v1, not 'apps/v1'"),
])
def test_bad_fields_name_file_line_object_and_field(text, line, words):
    with pytest.raises(ManifestError) as e:
        manifests.parse(text, "m.yaml")
    assert e.value.line == line and words in str(e.value), str(e.value)
    assert str(e.value).startswith(f"m.yaml:{line}: ")


def test_a_deployment_selector_must_match_its_template():
    text = WEB.split("---")[1].replace("{matchLabels: {app: web}}", "{matchLabels: {app: db}}")
    with pytest.raises(ManifestError, match="spec.selector: must be non-empty and match"):
        manifests.parse(text, "d.yaml")


def test_replica_set_names_hash_the_template_as_kubernetes_spells_it():
    deploy = manifests.parse(WEB, "web.yaml").objects[1]
    rs = deploy.replica_set
    assert rs.startswith("web-") and all(c in kinds.SAFE_ALPHABET for c in rs[4:])
    assert rs == manifests.parse(WEB, "again.yaml").objects[1].replica_set
    changed = manifests.parse(WEB.replace("tier: front", "tier: back"), "c.yaml").objects[1]
    assert changed.replica_set != rs
    assert len(kinds.pod_suffix("x")) == 5


def test_a_directory_is_read_in_name_order(tmp_path):
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n")
    (tmp_path / "a.yml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert [o.name for o in manifests.load(str(tmp_path)).objects] == ["a", "b"]
    with pytest.raises(ManifestError, match="no such file"):
        manifests.load(str(tmp_path / "missing.yaml"))


def test_service_addresses_and_node_ports_are_checked():
    base = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {a: b}\n"
    with pytest.raises(ManifestError, match="spec.clusterIP: 'ten' is neither"):
        manifests.parse(base + "  clusterIP: ten\n  ports: [{port: 80}]\n", "s.yaml")
    with pytest.raises(ManifestError, match="nodePort: must be an integer from 30000 to 32767"):
        manifests.parse(base + "  type: NodePort\n  ports: [{port: 80, nodePort: 8080}]\n",
                        "s.yaml")
    headless = manifests.parse(base + "  clusterIP: None\n  ports: [{port: 80}]\n", "s.yaml")
    assert headless.objects[0].cluster_ip == "None"


SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {a: b}\n" \
    "  ports: [{port: 80}]\n"


def test_traffic_fields_of_a_service_are_read_with_the_api_servers_defaults():
    plain = manifests.parse(SERVICE, "s.yaml").objects[0]
    assert (plain.external_traffic_policy, plain.internal_traffic_policy) == ("", "Cluster")
    lb = manifests.parse(SERVICE + """\
  type: LoadBalancer
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  externalIPs: [192.168.99.22]
  loadBalancerSourceRanges: [" 203.0.113.0/25", 192.168.1.0/24]
  healthCheckNodePort: 30100
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
""", "s.yaml")
    svc = lb.objects[0]
    assert not lb.warnings
    assert (svc.external_traffic_policy, svc.internal_traffic_policy) == ("Local", "Local")
    assert svc.external_ips == ("192.168.99.22",)
    assert svc.source_ranges == ("203.0.113.0/25", "192.168.1.0/24")  # spaces trimmed
    assert (svc.health_check_node_port, svc.affinity_timeout) == (30100, 60)
    # a ClusterIP with external IPs is externally accessible: its policy defaults to Cluster
    ext = manifests.parse(SERVICE + "  externalIPs: [192.168.99.33]\n", "s.yaml").objects[0]
    assert ext.external_traffic_policy == "Cluster"


@pytest.mark.parametrize("extra, words", [
    ("  externalTrafficPolicy: Local\n", "spec.externalTrafficPolicy: may only be set for "
     "externally-accessible services"),
    ("  type: NodePort\n  externalTrafficPolicy: Global\n",
     "spec.externalTrafficPolicy: 'Global' is not Cluster or Local"),
    ("  loadBalancerSourceRanges: [10.0.0.0/8]\n",
     "spec.loadBalancerSourceRanges: only a LoadBalancer service has them, not ClusterIP"),
    ("  type: LoadBalancer\n  loadBalancerSourceRanges: [10.0.0.1/8]\n",
     "spec.loadBalancerSourceRanges[0]: '10.0.0.1/8' is not an IPv4 CIDR without host bits"),
    ("  externalIPs: [example.org]\n", "spec.externalIPs[0]: 'example.org' is not an IPv4"),
    ("  type: LoadBalancer\n  healthCheckNodePort: 30100\n", "spec.healthCheckNodePort: may "
     "only be set when type is LoadBalancer and externalTrafficPolicy is Local"),
    ("  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n",
     "timeoutSeconds: needs sessionAffinity: ClientIP"),
    ("  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n",
     "timeoutSeconds: must be an integer from 1 to 86400"),
])
def test_bad_traffic_fields_name_the_field(extra, words):
    with pytest.raises(ManifestError) as e:
        manifests.parse(SERVICE + extra, "s.yaml")
    assert words in str(e.value) and str(e.value).startswith("s.yaml:"), str(e.value)


POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, " \
    "image: busybox}]\n"


def test_a_pods_dns_fields_are_read_as_the_api_server_takes_them():
    plain = manifests.parse(POD, "p.yaml").objects[0].template
    assert plain.dns == kinds.PodDNS() and "dns" not in repr(kinds.template_hash(plain))
    pod = manifests.parse(POD + """\
  dnsPolicy: "None"
  dnsConfig:
    nameservers: [1.2.3.4]
    searches: [ns1.svc.cluster-domain.example, my.dns.search.suffix]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  hostname: busy-1
  subdomain: busy
  enableServiceLinks: false
""", "p.yaml")
    assert not pod.warnings
    dns = pod.objects[0].template.dns
    assert (dns.policy, dns.nameservers, dns.hostname, dns.subdomain, dns.service_links) == (
        "None", ("1.2.3.4",), "busy-1", "busy", False)
    assert dns.options == (("ndots", "2"), ("edns0", None))
    assert dns.record()["searches"] == ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"]
    host = manifests.parse(POD + "  hostNetwork: true\n", "p.yaml").objects[0].template
    assert host.host_network and kinds.template_hash(host) != kinds.template_hash(plain)


@pytest.mark.parametrize("extra, words", [
    ("  dnsPolicy: Cluster\n", "spec.dnsPolicy: 'Cluster' is not one of ClusterFirst"),
    ("  dnsPolicy: None\n", "spec.dnsConfig.nameservers: must have at least one nameserver "
     "when dnsPolicy is None"),
    ("  dnsConfig: {nameservers: [1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4]}\n",
     "must not have more than 3 nameservers"),
    ("  dnsConfig: {nameservers: [dns.example]}\n",
     "spec.dnsConfig.nameservers[0]: 'dns.example' is not an IPv4 address"),
    ("  dnsConfig: {options: [{value: '2'}]}\n", "spec.dnsConfig.options[0].name: missing"),
    ("  hostname: Busy_1\n", "spec.hostname: 'Busy_1' is not a DNS label"),
    ("  enableServiceLinks: 'no'\n", "spec.enableServiceLinks: must be true or false"),
    ("  hostNetwork: 1\n", "spec.hostNetwork: must be true or false"),
])
def test_bad_dns_fields_name_the_field(extra, words):
    with pytest.raises(ManifestError) as e:
        manifests.parse(POD + extra, "p.yaml")
    assert words in str(e.value), str(e.value)


def test_sctp_and_env_are_taken_as_the_api_server_takes_them():
    text = """\
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec:
  containers:
  - name: cont-80-sctp
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    command: [/agnhost, porter]
    env:
    - {name: SERVE_SCTP_PORT_80, value: foo}
    - {name: FROM_SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}
    ports: [{containerPort: 80, name: serve-80-sctp, protocol: SCTP}]
---
apiVersion: v1
kind: Service
metadata: {name: s-x-a, namespace: x}
spec:
  selector: {pod: a}
  ports: [{name: service-port-sctp-80, protocol: SCTP, port: 80}]
"""
    parsed = manifests.parse(text, "sctp.yaml")
    pod, svc = parsed.objects
    container = pod.template.containers[0]
    assert container.env == (("SERVE_SCTP_PORT_80", "foo"), ("FROM_SECRET", ""))
    assert container.ports[0].protocol == "SCTP" and svc.ports[0].protocol == "SCTP"
    assert parsed.warnings == ["sctp.yaml:11: Pod x/a: spec.containers[0].env[1].valueFrom: "
                               "not implemented by the testbed (ignored)"]
    with pytest.raises(ManifestError, match="'QUIC': the testbed implements TCP, UDP, SCTP"):
        manifests.parse(text.replace("protocol: SCTP, port", "protocol: QUIC, port"))


def test_a_warning_repeated_over_many_objects_is_one_line():
    from testbed.api.apply import condensed
    text = "".join(f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n"
                   "  terminationGracePeriodSeconds: 0\n  containers: [{name: c, image: x}]\n"
                   for i in range(4))
    text += "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    lines = condensed(manifests.parse(text, "m.yaml").warnings)
    assert lines == [
        "m.yaml:31: kind ConfigMap is not implemented by the testbed (the document is ignored)",
        "spec.terminationGracePeriodSeconds: not implemented by the testbed (ignored): 4 "
        "times: Pod default/p0 (m.yaml:6), Pod default/p1 (m.yaml:13) and 2 more"]


def test_a_services_families_are_read_as_given_and_their_shape_checked():
    svc = manifests.parse(SERVICE + "  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv6]\n"
                          "  clusterIPs: ['fd00:10:96::5']\n", "s.yaml").objects[0]
    assert (svc.ip_family_policy, svc.ip_families, svc.cluster_ips) == (
        "PreferDualStack", ("IPv6",), ("fd00:10:96::5",))
    for extra, words in (
            ("  clusterIPs: [10.96.0.5, 10.96.0.6]\n",
             "spec.clusterIPs[1]: '10.96.0.6': expected an IP of a different family"),
            ("  clusterIP: 10.96.0.5\n  clusterIPs: [10.96.0.6]\n",
             "spec.clusterIPs[0]: '10.96.0.6' must match clusterIP 10.96.0.5"),
            ("  clusterIPs: [ten]\n", "spec.clusterIPs[0]: 'ten' must be a valid IP address")):
        with pytest.raises(ManifestError) as e:
            manifests.parse(SERVICE + extra, "s.yaml")
        assert words in str(e.value), str(e.value)
