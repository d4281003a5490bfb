"""Kubernetes manifests -> the objects the testbed builds: Namespaces, Pods, Deployments, Services.

Reads multi-document YAML (a file, or every .yaml/.yml file of a directory in name order).
Everything is checked before anything is applied: malformed YAML or a field of the wrong type
is one ManifestError naming the file, the line and the field. Kinds and fields the testbed does
not implement are returned as warnings, one line each, naming them — never dropped silently.
"""
import ipaddress
import os
import re

import yaml

from testbed.api.kinds import (
    Container,
    ContainerPort,
    Deployment,
    LabelSelector,
    ManifestError,
    Manifests,
    Namespace,
    NetworkPolicy,
    Pod,
    PodTemplate,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Service,
    ServicePort,
)
from testbed.errors import brief
from testbed.safe_input import InputError, check_expansion, read_text

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# the API server's rules (k8s.io/apimachinery/pkg/util/validation)
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def label_key_problem(key):
    """Why `key` is no label key (an optional DNS subdomain prefix and '/', then a name of at
    most 63 characters), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return f"{brief(key)}: the prefix before '/' must be a DNS subdomain"
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        return (f"{brief(key)} is not a label key (at most 63 letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit, after an optional prefix/)")
    return None
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PROTOCOLS = ("TCP", "UDP", "SCTP")
META_KEYS = {"name", "namespace", "labels", "annotations"}
IGNORED_META = {"annotations"}  # kept by Kubernetes for tools; nothing for the network to do
KINDS = {  # kind -> (apiVersion, keys of spec the testbed implements)
    "Namespace": ("v1", set()),
    "Pod": ("v1", {"containers", "nodeName"}),
    "Deployment": ("apps/v1", {"replicas", "selector", "template"}),
    "Service": ("v1", {"type", "selector", "ports", "clusterIP", "sessionAffinity",
                       "externalName"}),
    "NetworkPolicy": ("networking.k8s.io/v1", {"podSelector", "policyTypes", "ingress",
                                               "egress"}),
}
SELECTOR_KEYS = {"matchLabels", "matchExpressions"}
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
PEER_KEYS = {"podSelector", "namespaceSelector", "ipBlock"}
POLICY_PORT_KEYS = {"protocol", "port", "endPort"}
POLICY_TYPES = ("Ingress", "Egress")
CONTAINER_KEYS = {"name", "image", "command", "args", "ports", "env"}
ENV_KEYS = {"name", "value"}
CONTAINER_PORT_KEYS = {"containerPort", "name", "protocol"}
SERVICE_PORT_KEYS = {"name", "port", "targetPort", "nodePort", "protocol"}


def load(path):
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
    return out


def _files(path):
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml")))
        if not names:
            raise ManifestError(path, None, "the directory holds no .yaml or .yml file")
        return [os.path.join(path, n) for n in names]
    if not os.path.exists(path):
        raise ManifestError(path, None, "no such file or directory")
    return [path]


def parse(text, path="<string>"):
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
    return out


class _Document:
    """One YAML document, read with the line of every node at hand for errors."""

    def __init__(self, path, warnings):
        self.path = path
        self.warnings = warnings
        self.what = "document"

    # --- composed-node helpers -------------------------------------------------------------
    def fail(self, node, fld, problem):
        line = node.start_mark.line + 1 if node is not None else None
        raise ManifestError(self.path, line, f"{self.what}: {fld}: {problem}")

    def warn(self, node, fld, problem):
        self.warnings.append(f"{self.path}:{node.start_mark.line + 1}: {self.what}: {fld}: "
                             f"{problem}")

    def mapping(self, node, fld, known):
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, fld, "must be a mapping")
        out = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.fail(key, fld, "keys must be strings")
            name = key.value
            if name in out:
                self.fail(key, f"{fld}.{name}" if fld else name, "given twice")
            out[name] = value
            if name not in known:
                self.warn(key, f"{fld}.{name}" if fld else name,
                          "not implemented by the testbed (ignored)")
        return out

    def string(self, node, fld, allow_empty=False):
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str" or \
                (not node.value and not allow_empty):
            self.fail(node, fld, "must be a string")
        if "\0" in node.value:  # no argv, environment or name can carry one
            self.fail(node, fld, f"{brief(node.value)} holds a NUL character")
        return node.value

    def integer(self, node, fld, low, high):
        value = yaml.safe_load(node.value) if isinstance(node, yaml.ScalarNode) and \
            node.tag == "tag:yaml.org,2002:int" else None
        if not isinstance(value, int) or not low <= value <= high:
            self.fail(node, fld, f"must be an integer from {low} to {high}")
        return value

    def name(self, node, fld):
        value = self.string(node, fld)
        if not DNS_LABEL.match(value) or len(value) > 63:
            self.fail(node, fld, f"{brief(value)} is not a DNS label (lower-case letters, digits, "
                      "'-', at most 63)")
        return value

    def port_name(self, node, fld):
        """A named port as the API server takes it (IANA_SVC_NAME)."""
        value = self.string(node, fld)
        if not IANA_SVC_NAME.match(value) or len(value) > 15 or "--" in value or \
                not re.search("[a-z]", value):
            self.fail(node, fld, f"{brief(value)} is not a port name (at most 15 lower-case "
                      "letters, digits and '-', at least one letter, no '-' at either end "
                      "or twice in a row)")
        return value

    def labels(self, node, fld):
        if node is None:
            return {}
        raw = self.mapping(node, fld, known=_Everything())
        out = {}
        for key, value_node in raw.items():
            problem = label_key_problem(key)
            if problem:
                self.fail(node, f"{fld}.{key}", problem)
            value = self.string(value_node, f"{fld}.{key}", allow_empty=True)
            if len(value) > 63 or not LABEL_VALUE.match(value):
                self.fail(value_node, f"{fld}.{key}", f"{brief(value)} is not a label value "
                          "(at most 63 letters, digits, '-', '_' and '.', starting and ending "
                          "with a letter or digit)")
            out[key] = value
        return out

    def strings(self, node, fld):
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, fld, "must be a list of strings")
        return tuple(self.string(item, f"{fld}[{i}]", allow_empty=True)
                     for i, item in enumerate(node.value))

    # --- kinds -------------------------------------------------------------------------------
    def read(self, node, objects):
        top = self.mapping(node, "", known={"apiVersion", "kind", "metadata", "spec"})
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
        namespace = self.name(meta["namespace"], "metadata.namespace") \
            if "namespace" in meta and kind != "Namespace" else "default"
        self.what = f"{kind} {name}" if kind == "Namespace" else f"{kind} {namespace}/{name}"
        labels = self.labels(meta.get("labels"), "metadata.labels")
        spec_node = top.get("spec")
        source = f"{self.path}:{node.start_mark.line + 1}"
        if kind == "Namespace":
            if spec_node is not None:
                self.mapping(spec_node, "spec", spec_keys)
            objects.append(Namespace(name, labels, source))
            return
        if spec_node is None:
            self.fail(node, "spec", "missing")
        spec = self.mapping(spec_node, "spec", spec_keys)
        if kind == "Pod":
            objects.append(Pod(name, namespace, self.pod_template(spec, labels, "spec", node),
                               source))
        elif kind == "Deployment":
            objects.append(self.deployment(name, namespace, spec, spec_node, source))
        elif kind == "Service":
            objects.append(self.service(name, namespace, spec, spec_node, source))
        else:
            objects.append(self.network_policy(name, namespace, spec, spec_node, source))

    def pod_template(self, spec, labels, fld, node):
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
        return PodTemplate(labels, tuple(containers), node_name)

    def env(self, node, fld):
        out = []
        for i, enode in enumerate(self.sequence(node, fld)):
            e = self.mapping(enode, f"{fld}[{i}]", ENV_KEYS)
            if "name" not in e:
                self.fail(enode, f"{fld}[{i}].name", "missing")
            value = self.string(e["value"], f"{fld}[{i}].value", allow_empty=True) \
                if "value" in e else ""
            out.append((self.string(e["name"], f"{fld}[{i}].name"), value))
        return tuple(out)

    def protocol(self, node, fld):
        if node is None:
            return "TCP"
        value = self.string(node, fld)
        if value not in PROTOCOLS:
            self.fail(node, fld, f"{brief(value)}: the testbed implements {', '.join(PROTOCOLS)}")
        return value

    def deployment(self, name, namespace, spec, spec_node, source):
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

    def service(self, name, namespace, spec, spec_node, source):
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
                ipaddress.IPv4Address(cluster_ip)
            except ValueError:
                self.fail(spec["clusterIP"], "spec.clusterIP",
                          f"{brief(cluster_ip)} is neither an IPv4 address nor None")
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
                       external, source)


    def selector(self, node, fld):
        sel = self.mapping(node, fld, SELECTOR_KEYS)
        labels = self.labels(sel.get("matchLabels"), f"{fld}.matchLabels")
        expressions = []
        if "matchExpressions" in sel:
            seq = sel["matchExpressions"]
            if not isinstance(seq, yaml.SequenceNode):
                self.fail(seq, f"{fld}.matchExpressions", "must be a list")
            for i, enode in enumerate(seq.value):
                efld = f"{fld}.matchExpressions[{i}]"
                e = self.mapping(enode, efld, {"key", "operator", "values"})
                for key in ("key", "operator"):
                    if key not in e:
                        self.fail(enode, f"{efld}.{key}", "missing")
                op = self.string(e["operator"], f"{efld}.operator")
                if op not in SELECTOR_OPERATORS:
                    self.fail(e["operator"], f"{efld}.operator",
                              f"{brief(op)} is not one of {', '.join(SELECTOR_OPERATORS)}")
                values = self.strings(e["values"], f"{efld}.values") if "values" in e else ()
                if (op in ("In", "NotIn")) != bool(values):
                    self.fail(enode, f"{efld}.values", "In and NotIn need values; Exists and "
                              "DoesNotExist take none")
                expressions.append((self.string(e["key"], f"{efld}.key"), op, values))
        return LabelSelector(tuple(sorted(labels.items())), tuple(expressions))

    def sequence(self, node, fld):
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, fld, "must be a list")
        return node.value

    def network_policy(self, name, namespace, spec, spec_node, source):
        if "podSelector" not in spec:
            self.fail(spec_node, "spec.podSelector", "missing (an empty {} selects every pod "
                      "of the namespace)")
        pod_selector = self.selector(spec["podSelector"], "spec.podSelector")
        if "policyTypes" in spec:
            types = self.strings(spec["policyTypes"], "spec.policyTypes")
            for i, t in enumerate(types):
                if t not in POLICY_TYPES:
                    self.fail(spec["policyTypes"].value[i], f"spec.policyTypes[{i}]",
                              f"{brief(t)} is not Ingress or Egress")
        else:  # Kubernetes' default: Ingress, and Egress when there are egress rules
            types = ("Ingress",) + (("Egress",) if "egress" in spec else ())
        rules = {}
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            out = []
            for i, rnode in enumerate(self.sequence(spec[direction], f"spec.{direction}")
                                      if direction in spec else []):
                rfld = f"spec.{direction}[{i}]"
                r = self.mapping(rnode, rfld, {peers_key, "ports"})
                peers = tuple(self.peer(pnode, f"{rfld}.{peers_key}[{j}]") for j, pnode in
                              enumerate(self.sequence(r[peers_key], f"{rfld}.{peers_key}")
                                        if peers_key in r else []))
                ports = tuple(self.policy_port(pnode, f"{rfld}.ports[{j}]") for j, pnode in
                              enumerate(self.sequence(r["ports"], f"{rfld}.ports")
                                        if "ports" in r else []))
                out.append(PolicyRule(peers, ports))
            rules[direction] = tuple(out)
        return NetworkPolicy(name, namespace, pod_selector, tuple(types), rules["ingress"],
                             rules["egress"], source)

    def peer(self, node, fld):
        p = self.mapping(node, fld, PEER_KEYS)
        if not p:
            self.fail(node, fld, "needs podSelector, namespaceSelector or ipBlock")
        if "ipBlock" in p:
            if len(p) > 1:
                self.fail(node, fld, "ipBlock cannot be combined with a selector")
            block = self.mapping(p["ipBlock"], f"{fld}.ipBlock", {"cidr", "except"})
            if "cidr" not in block:
                self.fail(p["ipBlock"], f"{fld}.ipBlock.cidr", "missing")
            cidr = self.cidr(block["cidr"], f"{fld}.ipBlock.cidr")
            excepts = tuple(self.cidr(e, f"{fld}.ipBlock.except[{i}]") for i, e in
                            enumerate(self.sequence(block["except"], f"{fld}.ipBlock.except")
                                      if "except" in block else []))
            for i, e in enumerate(excepts):
                if not ipaddress.IPv4Network(e).subnet_of(ipaddress.IPv4Network(cidr)):
                    self.fail(block["except"].value[i], f"{fld}.ipBlock.except[{i}]",
                              f"{e} is not inside cidr {cidr}")
            return PolicyPeer(cidr=cidr, excepts=excepts)
        return PolicyPeer(
            self.selector(p["podSelector"], f"{fld}.podSelector") if "podSelector" in p else None,
            self.selector(p["namespaceSelector"], f"{fld}.namespaceSelector")
            if "namespaceSelector" in p else None)

    def cidr(self, node, fld):
        """An IPv4 CIDR; host bits are accepted, as the API server accepts them, and mean the
        masked network (named in a warning)."""
        value = self.string(node, fld)
        try:
            network = ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            self.fail(node, fld, f"{brief(value)} is not an IPv4 CIDR")
        if str(network) != value:
            self.warn(node, fld, f"{brief(value)} has host bits set: it means {network}")
        return str(network)

    def policy_port(self, node, fld):
        p = self.mapping(node, fld, POLICY_PORT_KEYS)
        protocol = self.protocol(p.get("protocol"), f"{fld}.protocol")
        port = None
        if "port" in p:
            pnode = p["port"]
            port = self.port_name(pnode, f"{fld}.port") if pnode.tag == "tag:yaml.org,2002:str" \
                else self.integer(pnode, f"{fld}.port", 1, 65535)
        end_port = 0
        if "endPort" in p:
            end_port = self.integer(p["endPort"], f"{fld}.endPort", 1, 65535)
            if not isinstance(port, int) or end_port < port:
                self.fail(p["endPort"], f"{fld}.endPort", "needs a numeric port no greater "
                          "than it")
        return PolicyPort(protocol, port, end_port)


class _Everything:
    """A key set holding every key: label maps take any key."""

    def __contains__(self, _key):
        return True
