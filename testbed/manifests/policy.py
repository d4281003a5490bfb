"""NetworkPolicy manifests (networking.k8s.io/v1) read into kinds.NetworkPolicy: selectors
with matchLabels and matchExpressions, peers (podSelector, namespaceSelector, ipBlock with
except), ports by number or name with endPort, and policyTypes with Kubernetes' default."""
import ipaddress

import yaml

from testbed.errors import brief
from testbed.manifests.fields import FieldReader, Fields, Node
from testbed.manifests.kinds import LabelSelector, NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule

SELECTOR_KEYS = {"matchLabels", "matchExpressions"}
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
PEER_KEYS = {"podSelector", "namespaceSelector", "ipBlock"}
POLICY_PORT_KEYS = {"protocol", "port", "endPort"}
POLICY_TYPES = ("Ingress", "Egress")


class PolicyReader(FieldReader):
    """The NetworkPolicy part of a document reader."""

    def selector(self, node: Node | None, fld: str) -> LabelSelector:
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

    def network_policy(self, name: str, namespace: str, spec: Fields, spec_node: Node | None,
                       source: str) -> NetworkPolicy:
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

    def peer(self, node: Node, fld: str) -> PolicyPeer:
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
                inner, outer = ipaddress.ip_network(e), ipaddress.ip_network(cidr)
                if inner.version != outer.version or not inner.subnet_of(outer):
                    self.fail(block["except"].value[i], f"{fld}.ipBlock.except[{i}]",
                              f"{e} is not inside cidr {cidr}")
            return PolicyPeer(cidr=cidr, excepts=excepts)
        return PolicyPeer(
            self.selector(p["podSelector"], f"{fld}.podSelector") if "podSelector" in p else None,
            self.selector(p["namespaceSelector"], f"{fld}.namespaceSelector")
            if "namespaceSelector" in p else None)

    def cidr(self, node: Node | None, fld: str) -> str:
        """An IPv4 or IPv6 CIDR; host bits are accepted, as the API server accepts them, and
        mean the masked network (named in a warning)."""
        value = self.string(node, fld)
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            self.fail(node, fld, f"{brief(value)} is not a CIDR")
        if str(network) != value:
            self.warn(node, fld, f"{brief(value)} has host bits set: it means {network}")
        return str(network)

    def policy_port(self, node: Node, fld: str) -> PolicyPort:
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
