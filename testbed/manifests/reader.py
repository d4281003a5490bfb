"""Kubernetes manifests -> the objects the testbed builds: Namespaces, Pods, Deployments, Services.

Reads multi-document YAML (a file, or every .yaml/.yml file of a directory in name order).
Everything is checked before anything is applied: malformed YAML or a field of the wrong type
is one ManifestError naming the file, the line and the field. Kinds and fields the testbed does
not implement are returned as warnings, one line each, naming them — never dropped silently.
"""
import dataclasses
import ipaddress
import os

import yaml

from testbed.errors import brief
from testbed.manifests.fields import DNS_SUBDOMAIN, EVERY_KEY, Fields, Node
from testbed.manifests.ingress import INGRESS_KEYS, SECRET_KEYS, IngressReader
from testbed.manifests.kinds import (
    Container,
    ContainerPort,
    Deployment,
    ManifestError,
    Manifests,
    Namespace,
    Pod,
    PodDNS,
    PodTemplate,
    Service,
    ServicePort,
)
from testbed.manifests.policy import PolicyReader
from testbed.safe_input import InputError, check_expansion, read_text

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
META_KEYS = {"name", "namespace", "labels", "annotations"}
IGNORED_META = {"annotations"}  # kept by Kubernetes for tools; nothing for the network to do,
# but for these, which kube-proxy reads
TOPOLOGY_ANNOTATIONS = ("service.kubernetes.io/topology-mode",
                        "service.kubernetes.io/topology-aware-hints")  # the first wins
KINDS = {  # kind -> (apiVersion, keys of spec the testbed implements)
    "Namespace": ("v1", set()),
    "Pod": ("v1", {"containers", "nodeName", "dnsPolicy", "dnsConfig", "hostname", "subdomain",
                   "enableServiceLinks", "hostNetwork"}),
    "Deployment": ("apps/v1", {"replicas", "selector", "template"}),
    "Service": ("v1", {"type", "selector", "ports", "clusterIP", "sessionAffinity",
                       "externalName", "externalTrafficPolicy", "internalTrafficPolicy",
                       "externalIPs", "loadBalancerSourceRanges", "healthCheckNodePort",
                       "sessionAffinityConfig", "clusterIPs", "ipFamilies", "ipFamilyPolicy"}),
    "NetworkPolicy": ("networking.k8s.io/v1", {"podSelector", "policyTypes", "ingress",
                                               "egress"}),
    "Ingress": ("networking.k8s.io/v1", INGRESS_KEYS),
    "IngressClass": ("networking.k8s.io/v1", {"controller"}),
    "Secret": ("v1", set()),  # its fields are at the top: type, data, stringData
}
CONTAINER_KEYS = {"name", "image", "command", "args", "ports", "env"}
ENV_KEYS = {"name", "value"}
CONTAINER_PORT_KEYS = {"containerPort", "name", "protocol"}
SERVICE_PORT_KEYS = {"name", "port", "targetPort", "nodePort", "protocol"}



def load(path: str) -> Manifests:
    """Read a file or a directory of manifests; raises ManifestError, returns Manifests."""
    files = _files(path)
    out = Manifests()
    for name in files:
        try:
            text = read_text(name)
        except InputError as e:
            raise ManifestError(name, None, str(e))
        parsed = parse(text, name)
        out.objects += parsed.objects
        out.warnings += parsed.warnings
        out.documents += parsed.documents
    return out


def _files(path: str) -> list[str]:
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml")))
        if not names:
            raise ManifestError(path, None, "the directory holds no .yaml or .yml file")
        return [os.path.join(path, n) for n in names]
    if not os.path.exists(path):
        raise ManifestError(path, None, "no such file or directory")
    return [path]


def parse(text: str, path: str = "<string>") -> Manifests:
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        for node in docs:
            if node is not None:
                check_expansion(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ManifestError(path, mark.line + 1 if mark else None,
                            f"malformed YAML: {getattr(e, 'problem', None) or e}")
    except InputError as e:
        raise ManifestError(path, None, str(e))
    except RecursionError:
        raise ManifestError(path, None, "YAML nested too deeply")
    out = Manifests()
    for node in docs:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value == ""):
            continue
        _Document(path, out.warnings).read(node, out.objects)
        out.documents.append((path, yaml.SafeLoader("").construct_document(node)))
    return out


class _Document(IngressReader, PolicyReader):
    """One YAML document, read into the kinds the testbed implements."""

    def read(self, node: Node, objects: list) -> None:
        top = self.mapping(node, "", known=EVERY_KEY)  # checked once the kind is known
        self.top_level_keys(node, top)
        kind_node = top.get("kind")
        if kind_node is None:
            self.fail(node, "kind", "missing")
        kind = self.string(kind_node, "kind")
        if kind not in KINDS:
            self.warnings.append(f"{self.path}:{kind_node.start_mark.line + 1}: kind {kind} is "
                                 "not implemented by the testbed (the document is ignored)")
            return
        api, spec_keys = KINDS[kind]
        version = self.string(top["apiVersion"], "apiVersion") if "apiVersion" in top else None
        if version != api:
            self.fail(top.get("apiVersion", node), "apiVersion", f"{kind} needs {api}, "
                      f"not {brief(version)}")
        if "metadata" not in top:
            self.fail(node, "metadata.name", "missing")
        meta = self.mapping(top["metadata"], "metadata", META_KEYS)
        if "name" not in meta:
            self.fail(node, "metadata.name", "missing")
        name = self.name(meta["name"], "metadata.name")
        if kind == "Service" and not name[0].isalpha():  # an RFC 1035 label, as the API
            self.fail(meta["name"], "metadata.name",  # server requires of Services
                      f"{brief(name)}: a Service's name must start with a letter")
        cluster_scoped = kind in ("Namespace", "IngressClass")
        namespace = self.name(meta["namespace"], "metadata.namespace") \
            if "namespace" in meta and not cluster_scoped else "default"
        self.what = f"{kind} {name}" if cluster_scoped else f"{kind} {namespace}/{name}"
        labels = self.labels(meta.get("labels"), "metadata.labels")
        # read for the kinds whose annotations mean something here
        notes = self.mapping(meta["annotations"], "metadata.annotations", EVERY_KEY) \
            if "annotations" in meta and kind in ("Service", "Ingress", "IngressClass") else {}
        spec_node = top.get("spec")
        source = f"{self.path}:{node.start_mark.line + 1}"
        if kind == "Namespace":
            if spec_node is not None:
                self.mapping(spec_node, "spec", spec_keys)
            objects.append(Namespace(name, labels, source))
            return
        if kind == "Secret":
            objects.append(self.secret(name, namespace, top, source))
            return
        if spec_node is None:
            self.fail(node, "spec", "missing")
        spec = self.mapping(spec_node, "spec", spec_keys)
        if kind == "Pod":
            objects.append(Pod(name, namespace, self.pod_template(spec, labels, "spec", node),
                               source))
        elif kind == "Deployment":
            objects.append(self.deployment(name, namespace, spec, spec_node, source))
        elif kind == "Ingress":
            for key, value in notes.items():  # ingress-nginx's own: what they would change
                if key.startswith("nginx.ingress.kubernetes.io/"):
                    self.warn(value, f"metadata.annotations.{key}",
                              "not implemented by the testbed's ingress controller (ignored)")
            objects.append(self.ingress(name, namespace, spec, source))
        elif kind == "IngressClass":
            objects.append(self.ingress_class(name, spec, {
                k: v.value for k, v in notes.items() if isinstance(v, yaml.ScalarNode)}, source))
        elif kind == "Service":
            svc = self.service(name, namespace, spec, spec_node, source)
            mode = next((self.string(notes[k], f"metadata.annotations.{k}", allow_empty=True)
                         for k in TOPOLOGY_ANNOTATIONS if k in notes), "")
            objects.append(dataclasses.replace(svc, topology_mode=mode) if mode else svc)
        else:
            objects.append(self.network_policy(name, namespace, spec, spec_node, source))

    def top_level_keys(self, node: Node, top: Fields) -> None:
        """Warn of top-level keys the document's kind does not have (a Secret's are type,
        data, stringData; every other kind's, spec)."""
        kind = top["kind"].value if "kind" in top and \
            isinstance(top["kind"], yaml.ScalarNode) else ""
        known = {"apiVersion", "kind", "metadata"} | (SECRET_KEYS if kind == "Secret"
                                                      else {"spec"})
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value not in known:
                self.warn(key_node, key_node.value, "not implemented by the testbed (ignored)")

    def pod_template(self, spec: Fields, labels: dict[str, str], fld: str,
                     node: Node) -> PodTemplate:
        if "containers" not in spec:
            self.fail(node, f"{fld}.containers", "missing")
        seq = spec["containers"]
        if not isinstance(seq, yaml.SequenceNode) or not seq.value:
            self.fail(seq, f"{fld}.containers", "must be a non-empty list")
        containers, names = [], set()
        for i, cnode in enumerate(seq.value):
            cfld = f"{fld}.containers[{i}]"
            c = self.mapping(cnode, cfld, CONTAINER_KEYS)
            for key in ("name", "image"):
                if key not in c:
                    self.fail(cnode, f"{cfld}.{key}", "missing")
            cname = self.name(c["name"], f"{cfld}.name")
            if cname in names:
                self.fail(c["name"], f"{cfld}.name", f"{brief(cname)} is used twice in the pod")
            names.add(cname)
            ports = []
            for j, pnode in enumerate(c["ports"].value if "ports" in c else []):
                pfld = f"{cfld}.ports[{j}]"
                p = self.mapping(pnode, pfld, CONTAINER_PORT_KEYS)
                if "containerPort" not in p:
                    self.fail(pnode, f"{pfld}.containerPort", "missing")
                ports.append(ContainerPort(
                    self.integer(p["containerPort"], f"{pfld}.containerPort", 1, 65535),
                    self.port_name(p["name"], f"{pfld}.name") if "name" in p else "",
                    self.protocol(p.get("protocol"), f"{pfld}.protocol")))
            containers.append(Container(
                cname, self.string(c["image"], f"{cfld}.image"),
                self.strings(c["command"], f"{cfld}.command") if "command" in c else (),
                self.strings(c["args"], f"{cfld}.args") if "args" in c else (),
                tuple(ports), self.env(c["env"], f"{cfld}.env") if "env" in c else ()))
        node_name = self.name(spec["nodeName"], f"{fld}.nodeName") if "nodeName" in spec else ""
        return PodTemplate(labels, tuple(containers), node_name, self.pod_dns(spec, fld, node),
                           self.boolean(spec["hostNetwork"], f"{fld}.hostNetwork")
                           if "hostNetwork" in spec else False)

    def pod_dns(self, spec: Fields, fld: str, node: Node) -> PodDNS:
        """dnsPolicy, dnsConfig, hostname, subdomain and enableServiceLinks, checked as the
        API server checks them."""
        policy = self.string(spec["dnsPolicy"], f"{fld}.dnsPolicy") \
            if "dnsPolicy" in spec else "ClusterFirst"
        if policy not in DNS_POLICIES:
            self.fail(spec["dnsPolicy"], f"{fld}.dnsPolicy",
                      f"{brief(policy)} is not one of {', '.join(DNS_POLICIES)}")
        servers, searches, options = (), (), ()
        if "dnsConfig" in spec:
            cfld = f"{fld}.dnsConfig"
            config = self.mapping(spec["dnsConfig"], cfld, {"nameservers", "searches", "options"})
            if "nameservers" in config:
                servers = tuple(self.address(n, f"{cfld}.nameservers[{i}]") for i, n in
                                enumerate(self.sequence(config["nameservers"],
                                                        f"{cfld}.nameservers")))
                if len(servers) > 3:
                    self.fail(config["nameservers"], f"{cfld}.nameservers",
                              "must not have more than 3 nameservers")
            if "searches" in config:
                searches = tuple(self.search_domain(n, f"{cfld}.searches[{i}]") for i, n in
                                 enumerate(self.sequence(config["searches"], f"{cfld}.searches")))
                if len(searches) > 32:
                    self.fail(config["searches"], f"{cfld}.searches",
                              "must not have more than 32 search paths")
            if "options" in config:
                options = tuple(self.dns_option(n, f"{cfld}.options[{i}]") for i, n in
                                enumerate(self.sequence(config["options"], f"{cfld}.options")))
        if policy == "None" and not servers:
            self.fail(spec.get("dnsConfig", node), f"{fld}.dnsConfig.nameservers",
                      "must have at least one nameserver when dnsPolicy is None")
        names = [self.name(spec[k], f"{fld}.{k}") if k in spec else ""
                 for k in ("hostname", "subdomain")]
        links = self.boolean(spec["enableServiceLinks"], f"{fld}.enableServiceLinks") \
            if "enableServiceLinks" in spec else True
        return PodDNS(policy, servers, searches, options, names[0], names[1], links)

    def boolean(self, node: Node, fld: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            self.fail(node, fld, "must be true or false")
        return node.value.lower() == "true"

    def search_domain(self, node: Node, fld: str) -> str:
        value = self.string(node, fld).rstrip(".")
        if len(value) > 253 or not DNS_SUBDOMAIN.match(value):
            self.fail(node, fld, f"{brief(value)} is not a DNS subdomain")
        return value

    def dns_option(self, node: Node, fld: str) -> tuple:
        option = self.mapping(node, fld, {"name", "value"})
        if "name" not in option:
            self.fail(node, f"{fld}.name", "missing")
        return (self.string(option["name"], f"{fld}.name"),
                self.string(option["value"], f"{fld}.value", allow_empty=True)
                if "value" in option else None)

    def env(self, node: Node | None, fld: str) -> tuple:
        out = []
        for i, enode in enumerate(self.sequence(node, fld)):
            e = self.mapping(enode, f"{fld}[{i}]", ENV_KEYS)
            if "name" not in e:
                self.fail(enode, f"{fld}[{i}].name", "missing")
            value = self.string(e["value"], f"{fld}[{i}].value", allow_empty=True) \
                if "value" in e else ""
            out.append((self.string(e["name"], f"{fld}[{i}].name"), value))
        return tuple(out)

    def deployment(self, name: str, namespace: str, spec: Fields, spec_node: Node | None,
                   source: str) -> Deployment:
        replicas = self.integer(spec["replicas"], "spec.replicas", 0, 1000) \
            if "replicas" in spec else 1
        for key in ("selector", "template"):
            if key not in spec:
                self.fail(spec_node, f"spec.{key}", "missing")
        sel = self.mapping(spec["selector"], "spec.selector", {"matchLabels"})
        if "matchLabels" not in sel:
            self.fail(spec["selector"], "spec.selector.matchLabels", "missing")
        selector = self.labels(sel["matchLabels"], "spec.selector.matchLabels")
        tmpl = self.mapping(spec["template"], "spec.template", {"metadata", "spec"})
        tmeta = self.mapping(tmpl["metadata"], "spec.template.metadata", {"labels"}) \
            if "metadata" in tmpl else {}
        labels = self.labels(tmeta.get("labels"), "spec.template.metadata.labels")
        if any(labels.get(k) != v for k, v in selector.items()) or not selector:
            self.fail(spec["selector"], "spec.selector",
                      "must be non-empty and match spec.template.metadata.labels")
        if "spec" not in tmpl:
            self.fail(spec["template"], "spec.template.spec", "missing")
        pod_spec = self.mapping(tmpl["spec"], "spec.template.spec", KINDS["Pod"][1])
        template = self.pod_template(pod_spec, labels, "spec.template.spec", tmpl["spec"])
        return Deployment(name, namespace, replicas, selector, template, source)

    def service(self, name: str, namespace: str, spec: Fields, spec_node: Node | None,
                source: str) -> Service:
        stype = self.string(spec["type"], "spec.type") if "type" in spec else "ClusterIP"
        if stype not in SERVICE_TYPES:
            self.fail(spec["type"], "spec.type", f"{brief(stype)} is not one of "
                      f"{', '.join(SERVICE_TYPES)}")
        selector = self.labels(spec.get("selector"), "spec.selector")
        ports, names = [], set()
        for i, pnode in enumerate(spec["ports"].value if "ports" in spec else []):
            pfld = f"spec.ports[{i}]"
            p = self.mapping(pnode, pfld, SERVICE_PORT_KEYS)
            if "port" not in p:
                self.fail(pnode, f"{pfld}.port", "missing")
            port = self.integer(p["port"], f"{pfld}.port", 1, 65535)
            pname = self.name(p["name"], f"{pfld}.name") if "name" in p else ""
            if pname in names or (not pname and len(spec["ports"].value) > 1):
                self.fail(pnode, f"{pfld}.name", "ports of a multi-port service need "
                          "distinct names")
            names.add(pname)
            target = port
            if "targetPort" in p:
                tnode = p["targetPort"]
                target = self.port_name(tnode, f"{pfld}.targetPort") \
                    if tnode.tag == "tag:yaml.org,2002:str" else \
                    self.integer(tnode, f"{pfld}.targetPort", 1, 65535)
            node_port = self.integer(p["nodePort"], f"{pfld}.nodePort", 30000, 32767) \
                if "nodePort" in p else 0
            if node_port and stype not in ("NodePort", "LoadBalancer"):
                self.fail(p["nodePort"], f"{pfld}.nodePort", f"only NodePort and LoadBalancer "
                          f"services have one, not {stype}")
            ports.append(ServicePort(port, target, pname, node_port,
                                     self.protocol(p.get("protocol"), f"{pfld}.protocol")))
        cluster_ip = self.string(spec["clusterIP"], "spec.clusterIP") \
            if "clusterIP" in spec else ""
        if cluster_ip not in ("", "None"):
            try:
                ipaddress.ip_address(cluster_ip)
            except ValueError:
                self.fail(spec["clusterIP"], "spec.clusterIP",
                          f"{brief(cluster_ip)} is neither an IP address nor None")
        families = self.service_families(spec, cluster_ip)
        affinity = self.string(spec["sessionAffinity"], "spec.sessionAffinity") \
            if "sessionAffinity" in spec else "None"
        if affinity not in ("None", "ClientIP"):
            self.fail(spec["sessionAffinity"], "spec.sessionAffinity",
                      f"{brief(affinity)} is not None or ClientIP")
        external = self.string(spec["externalName"], "spec.externalName") \
            if "externalName" in spec else ""
        if (stype == "ExternalName") != bool(external):
            self.fail(spec_node, "spec.externalName",
                      "an ExternalName service needs it, and only such a service has it")
        if stype != "ExternalName" and not ports:
            self.fail(spec_node, "spec.ports", "missing")
        return Service(name, namespace, stype, selector, tuple(ports), cluster_ip, affinity,
                       external, source, **self.service_traffic(spec, stype, affinity),
                       **families)

    def service_families(self, spec: Fields, cluster_ip: str) -> dict:
        """clusterIPs, ipFamilies and ipFamilyPolicy as given, their shape checked as the API
        server checks it (what they mean in this cluster: manifests.families.settle)."""
        out: dict = {}
        if "clusterIPs" in spec:
            ips = self.strings(spec["clusterIPs"], "spec.clusterIPs")
            for i, ip in enumerate(ips):
                if ip != "None":
                    try:
                        ipaddress.ip_address(ip)
                    except ValueError:
                        self.fail(spec["clusterIPs"], f"spec.clusterIPs[{i}]",
                                  f"{brief(ip)} must be a valid IP address")
            if ips and cluster_ip and ips[0] != cluster_ip:
                self.fail(spec["clusterIPs"], "spec.clusterIPs[0]", f"{brief(ips[0])} must "
                          f"match clusterIP {cluster_ip}")
            if len(ips) > 1 and ips[0] == "None":
                self.fail(spec["clusterIPs"], "spec.clusterIPs", "a headless Service has "
                          "one: None")
            if len(ips) == 2 and ipaddress.ip_address(ips[0]).version == \
                    ipaddress.ip_address(ips[1]).version:
                self.fail(spec["clusterIPs"], "spec.clusterIPs[1]", f"{brief(ips[1])}: "
                          "expected an IP of a different family than clusterIPs[0]")
            if len(ips) > 2:
                self.fail(spec["clusterIPs"], "spec.clusterIPs", "may hold at most two "
                          "addresses, one per IP family")
            out["cluster_ips"] = ips
        if "ipFamilies" in spec:
            out["ip_families"] = self.strings(spec["ipFamilies"], "spec.ipFamilies")
        if "ipFamilyPolicy" in spec:
            out["ip_family_policy"] = self.string(spec["ipFamilyPolicy"], "spec.ipFamilyPolicy")
        return out

    def service_traffic(self, spec: Fields, stype: str, affinity: str) -> dict:
        """The fields of a Service that say where traffic may come from and go to, checked
        as the API server checks them."""
        external_ips = ()
        if "externalIPs" in spec:
            fld = "spec.externalIPs"
            external_ips = tuple(self.address(item, f"{fld}[{i}]") for i, item in
                                 enumerate(self.sequence(spec["externalIPs"], fld)))
            if stype == "ExternalName" and external_ips:
                self.fail(spec["externalIPs"], fld, "an ExternalName service has none")
        accessible = stype in ("NodePort", "LoadBalancer") or bool(external_ips)
        out = {"external_ips": external_ips,
               "external_traffic_policy": "Cluster" if accessible else ""}
        for key, fld in (("externalTrafficPolicy", "external_traffic_policy"),
                         ("internalTrafficPolicy", "internal_traffic_policy")):
            if key in spec:
                value = self.string(spec[key], f"spec.{key}")
                if value not in ("Cluster", "Local"):
                    self.fail(spec[key], f"spec.{key}", f"{brief(value)} is not Cluster or Local")
                out[fld] = value
        if "externalTrafficPolicy" in spec and not accessible:
            self.fail(spec["externalTrafficPolicy"], "spec.externalTrafficPolicy",
                      "may only be set for externally-accessible services (NodePort, "
                      "LoadBalancer, or with externalIPs)")
        if "loadBalancerSourceRanges" in spec:
            fld = "spec.loadBalancerSourceRanges"
            node = spec["loadBalancerSourceRanges"]
            if stype != "LoadBalancer":
                self.fail(node, fld, f"only a LoadBalancer service has them, not {stype}")
            out["source_ranges"] = tuple(self.source_range(item, f"{fld}[{i}]")
                                         for i, item in enumerate(self.sequence(node, fld)))
        if "healthCheckNodePort" in spec:
            node = spec["healthCheckNodePort"]
            if stype != "LoadBalancer" or out["external_traffic_policy"] != "Local":
                self.fail(node, "spec.healthCheckNodePort", "may only be set when type is "
                          "LoadBalancer and externalTrafficPolicy is Local")
            out["health_check_node_port"] = self.integer(node, "spec.healthCheckNodePort",
                                                         30000, 32767)
        if "sessionAffinityConfig" in spec:
            fld = "spec.sessionAffinityConfig"
            config = self.mapping(spec["sessionAffinityConfig"], fld, {"clientIP"})
            client = self.mapping(config["clientIP"], f"{fld}.clientIP", {"timeoutSeconds"}) \
                if "clientIP" in config else {}
            if "timeoutSeconds" in client:
                if affinity != "ClientIP":
                    self.fail(client["timeoutSeconds"], f"{fld}.clientIP.timeoutSeconds",
                              "needs sessionAffinity: ClientIP")
                out["affinity_timeout"] = self.integer(
                    client["timeoutSeconds"], f"{fld}.clientIP.timeoutSeconds", 1, 86400)
        return out

    def address(self, node: Node, fld: str) -> str:
        value = self.string(node, fld)
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            self.fail(node, fld, f"{brief(value)} is not an IPv4 address")
        return value

    def source_range(self, node: Node, fld: str) -> str:
        """A CIDR as the API server takes a source range: surrounding spaces are ignored (as
        kube-proxy ignores them), host bits are not."""
        value = self.string(node, fld).strip()
        try:
            network = ipaddress.IPv4Network(value)
        except ValueError:
            self.fail(node, fld, f"{brief(value)} is not an IPv4 CIDR without host bits")
        return str(network)
