"""Topology YAML -> validated ClusterSpec.

Every problem is raised as one SpecError naming the file, the field and the value, before
anything is built. Addresses of nodes and routers are fixed here, so that later stages only
read them.
"""
import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import yaml

from testbed.errors import SpecError, brief
from testbed.model.topology import (
    EXTERNAL_NAME,
    IP_FAMILIES,
    IPV4,
    IPV6,
    ROUTER_NAME,
    ClusterSpec,
    ContainerSpec,
    NodeSpec,
    PodSpec,
    RackSpec,
    host_v6,
)
from testbed.safe_input import InputError, check_expansion, read_text

IFNAME_MAX = 15  # Linux IFNAMSIZ - 1: node and rack names become interface names
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_POD_CIDR_V6 = "fd00:10:244::/56"  # kind's
DEFAULT_NODE_PREFIX = 24
DEFAULT_NODE_PREFIX_V6 = 64  # kube-controller-manager's --node-cidr-mask-size-ipv6
DEFAULT_MTU = 1500
FIRST_NODE_HOST = 11  # nodes get .11, .12, ... of their rack subnet; .1 is the rack's router

# the cluster's own keys; a mode's options are under keys its registry adds (Mode.options)
TOP_KEYS = {"name", "ipFamily", "podCIDR", "nodePrefix", "nodePrefixV6", "mtu", "mode",
            "bandwidth", "delay", "racks", "nodes", "underlay", "manifests", "externalClient",
            "kubeProxy", "networkPolicy"}
UNDERLAYS = ("linux", "ovs")  # what switches each rack: a Linux bridge, or OVS + os-ken
KUBE_PROXY_KEYS = {"mode"}
NETWORK_POLICY_KEYS = {"enforce"}
RACK_KEYS = {"name", "subnet", "bandwidth", "delay", "zone"}
NODE_KEYS = {"name", "rack", "pods"}
POD_KEYS = {"name", "namespace", "labels", "containers"}
CONTAINER_KEYS = {"name", "command"}
DEFAULT_COMMAND = ("sleep", "infinity")


def rack_subnet_v6(subnet: ipaddress.IPv4Network) -> ipaddress.IPv6Network:
    """A rack's IPv6 subnet when the topology gives none: its IPv4 network's first three
    numbers, written as they read, in fd00::/16 (192.168.1.0/24 -> fd00:192:168:1::/64)."""
    a, b, c, _ = str(subnet.network_address).split(".")
    return ipaddress.IPv6Network(f"fd00:{a}:{b}:{c}::/64")


CLUSTER_NAME_RULE = "cluster name must be 1-32 lower-case letters, digits and '-'"


def valid_cluster_name(name: object) -> bool:
    return isinstance(name, str) and bool(DNS_LABEL.match(name)) and len(name) <= 32


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"keys must be strings, not {brief(key)}", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


class Section:
    """One topology key a mode owns, as the mode's option reader (Mode.options) sees it: the
    mapping given there (empty when the key is absent), the cluster read so far (its nodes and
    racks) and checks that fail as every spec error does, naming file, field and value."""

    def __init__(self, path: str, key: str, doc: object, spec: ClusterSpec):
        self.path, self.key, self.spec = path, key, spec
        if doc is not None and not isinstance(doc, dict):
            self.fail("", doc, "must be a mapping")
        self.doc: dict = doc if isinstance(doc, dict) else {}
        self.given = doc is not None

    def fail(self, name: str, value: object, problem: str) -> NoReturn:
        """Raise a SpecError for field `name` of this section ("" for the section itself)."""
        raise SpecError(self.path, f"{self.key}.{name}" if name else self.key, value, problem)

    def fields(self, known: set[str]) -> dict:
        """The section's mapping, once no key outside `known` is in it."""
        unknown = sorted(set(map(str, self.doc)) - known)
        if unknown:
            self.fail(unknown[0], self.doc[unknown[0]],
                      f"unknown key (known: {', '.join(sorted(known))})")
        return self.doc

    def boolean(self, name: str, default: bool) -> bool:
        value = self.doc.get(name, default)
        if not isinstance(value, bool):
            self.fail(name, value, "must be true or false")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of `choices`; the first when the field is absent."""
        value = self.doc.get(name, choices[0])
        if value not in choices:
            self.fail(name, value, f"must be one of {', '.join(choices)}")
        return value


# a mode's reader of its topology key: the section -> its options (a frozen dataclass)
OptionReader = Callable[[Section], object]


def load(path: str, known_modes: list[str] | None = None,
         options: Mapping[str, OptionReader] | None = None,
         proxy_modes: list[str] | None = None, ip_family: str | None = None) -> ClusterSpec:
    """Read and validate a topology file; raises SpecError on the first problem.
    `known_modes` are the mode names to accept (None: any), `options` the topology keys the
    modes own with their readers (testbed.modes.option_readers()), `proxy_modes` kube-proxy's
    modes (testbed.kubeproxy.modes.proxy_mode_names(); None: any); `ip_family` overrides the
    topology's ipFamily (`up --ip-family`), before the defaults that follow from it."""
    try:
        text = read_text(path)
    except InputError as e:
        raise SpecError(path, None, None, str(e))
    return parse(text, path, known_modes, options, proxy_modes, ip_family)


def parse(text: str, path: str = "<string>", known_modes: list[str] | None = None,
          options: Mapping[str, OptionReader] | None = None,
          proxy_modes: list[str] | None = None, ip_family: str | None = None) -> ClusterSpec:
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            check_expansion(node)
        doc = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "YAML"
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(path, line, None, f"malformed YAML: {problem}")
    except InputError as e:
        raise SpecError(path, None, None, str(e))
    except RecursionError:
        raise SpecError(path, None, None, "YAML nested too deeply")
    finally:
        loader.dispose()
    return _Validator(path, known_modes, options or {}, proxy_modes, ip_family).cluster(doc)


def read_options(spec: ClusterSpec, readers: Mapping[str, OptionReader],
                 doc: Mapping | None = None) -> ClusterSpec:
    """`spec` with the modes' options read from the topology's keys (absent keys: each
    reader's defaults)."""
    doc = doc or {}
    return dataclasses.replace(spec, options={
        key: read(Section(spec.path, key, doc.get(key), spec)) for key, read in readers.items()})


class _Validator:
    def __init__(self, path: str, known_modes: list[str] | None,
                 options: Mapping[str, OptionReader], proxy_modes: list[str] | None,
                 ip_family: str | None = None):
        self.path = path
        self.ip_family = ip_family
        self.known_modes = known_modes
        self.options = options
        self.proxy_modes = proxy_modes
        # every node and rack name, (namespace, name) of pods -> its field
        self.names: dict[str | tuple, str] = {}
        self.pod_names: set[str] = set()

    def fail(self, fld: str, value: object, problem: str) -> NoReturn:
        raise SpecError(self.path, fld, value, problem)

    def mapping(self, doc: object, fld: str, keys: set[str]) -> dict:
        if not isinstance(doc, dict):
            self.fail(fld, doc, "must be a mapping")
        unknown = sorted(set(map(str, doc)) - keys)
        if unknown:
            prefix = f"{fld}." if fld else ""
            self.fail(prefix + unknown[0], doc[unknown[0]],
                      f"unknown key (known: {', '.join(sorted(keys))})")
        return doc

    def name(self, value: object, fld: str, max_len: int, what: str,
             key: tuple | None = None) -> str:
        """A checked name; `key` is what must be unique (a pod's: its namespace and name)."""
        if not isinstance(value, str) or not DNS_LABEL.match(value):
            self.fail(fld, value, f"{what} name must be lower-case letters, digits and '-'")
        if len(value) > max_len:
            self.fail(fld, value, f"{what} name is {len(value)} characters; at most {max_len} "
                      f"fit{' a Linux interface name' if max_len == IFNAME_MAX else ''}")
        for taken in (value, key):
            if taken is not None and taken in self.names:
                self.fail(fld, value, f"duplicate name (already used by {self.names[taken]})")
        if key is None and value in self.pod_names:
            self.fail(fld, value, "duplicate name (already a pod's)")
        if key is None:
            self.names[value] = fld
        else:  # pods: unique in their namespace, and no node's or rack's name
            self.names[key] = fld
            self.pod_names.add(value)
        return value

    def cidrs(self, value: object, fld: str, families: tuple[str, ...], default_v4: str,
              ) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network | None]:
        """A CIDR per family, given as kind's podSubnet is: "v4", "v6" or "v4,v6" (either
        order). An IPv6 CIDR without IPv6 in the cluster is refused, and an IPv4 one missing
        where IPv4 is a family; where it is not (an IPv6-only cluster), `default_v4` stands in
        for it (the underlay keeps IPv4)."""
        parts = [p.strip() for p in str(value).split(",")] if isinstance(value, str) else [value]
        nets: dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        for part in parts:
            try:
                net = ipaddress.ip_network(str(part), strict=True)
            except ValueError as e:
                self.fail(fld, value, f"not a CIDR with host bits zero ({e})")
            if net.version in nets:
                self.fail(fld, value, f"gives two IPv{net.version} CIDRs; one per family")
            nets[net.version] = net
        if 6 in nets and IPV6 not in families:
            self.fail(fld, value, "is an IPv6 CIDR but the cluster is IPv4 only (set ipFamily: "
                      "dual or ipv6)")
        if 4 not in nets:
            if IPV4 in families:
                self.fail(fld, value, "needs an IPv4 CIDR")
            nets[4] = ipaddress.IPv4Network(default_v4)
        return nets[4], nets.get(6)  # type: ignore[return-value]

    def number(self, value: object, fld: str, low: float, high: float,
               kind: type = int) -> Any:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or (
                kind is int and not float(value).is_integer()) or not low <= value <= high:
            self.fail(fld, value, f"must be a number from {low} to {high}")
        return kind(value)

    def cluster(self, doc: object) -> ClusterSpec:
        doc = self.mapping(doc if doc is not None else {}, "", TOP_KEYS | set(self.options))
        name = doc.get("name", "testbed")
        if not valid_cluster_name(name):
            self.fail("name", name, CLUSTER_NAME_RULE)
        family = self.ip_family or doc.get("ipFamily", "ipv4")
        if family not in IP_FAMILIES:
            self.fail("--ip-family" if self.ip_family else "ipFamily", family,
                      f"must be one of {', '.join(IP_FAMILIES)}")
        families = IP_FAMILIES[family]
        pod_cidr, pod_cidr_v6 = self.cidrs(doc.get("podCIDR", DEFAULT_POD_CIDR), "podCIDR",
                                           families, DEFAULT_POD_CIDR)
        if IPV6 in families and pod_cidr_v6 is None:
            # a podCIDR written for a dual cluster names each family's range, as kind's
            # podSubnet must; --ip-family on a file written for IPv4 adds kind's IPv6 default
            if "podCIDR" in doc and not self.ip_family:
                self.fail("podCIDR", doc["podCIDR"], f"needs an IPv6 CIDR too: ipFamily is "
                          f"{family} (e.g. {pod_cidr},{DEFAULT_POD_CIDR_V6})")
            pod_cidr_v6 = ipaddress.IPv6Network(DEFAULT_POD_CIDR_V6)
        prefix = self.number(doc.get("nodePrefix", DEFAULT_NODE_PREFIX), "nodePrefix",
                             pod_cidr.prefixlen, 28)
        prefix_v6 = DEFAULT_NODE_PREFIX_V6
        if pod_cidr_v6 is not None:
            prefix_v6 = self.number(doc.get("nodePrefixV6", DEFAULT_NODE_PREFIX_V6),
                                    "nodePrefixV6", pod_cidr_v6.prefixlen, 124)
        elif "nodePrefixV6" in doc:
            self.fail("nodePrefixV6", doc["nodePrefixV6"], "the cluster has no IPv6 (set "
                      "ipFamily: dual or ipv6)")
        mtu = self.number(doc.get("mtu", DEFAULT_MTU), "mtu", 1280, 9000)
        mode = doc.get("mode")
        if mode is not None and self.known_modes is not None and mode not in self.known_modes:
            self.fail("mode", mode, f"unknown mode (known: {', '.join(sorted(self.known_modes))})")
        bandwidth = doc.get("bandwidth")
        if bandwidth is not None:
            bandwidth = self.number(bandwidth, "bandwidth", 1, 100000, float)
        delay = doc.get("delay")
        if delay is not None:
            delay = self.number(delay, "delay", 0, 10000, float)
        racks = self.racks(doc.get("racks"), bandwidth, delay, pod_cidr, pod_cidr_v6)
        nodes = self.nodes(doc.get("nodes"), racks)
        for cidr, node_prefix in ((pod_cidr, prefix), (pod_cidr_v6, prefix_v6)):
            capacity = 2 ** (node_prefix - cidr.prefixlen) if cidr is not None else len(nodes)
            if len(nodes) > capacity:
                self.fail("podCIDR", str(cidr), f"holds {capacity} /{node_prefix} node "
                          f"subnets, too few for {len(nodes)} nodes")
        if len(racks) > 1:
            self.name(ROUTER_NAME, "(rack router)", IFNAME_MAX, "router")
        underlay = doc.get("underlay", "linux")
        if underlay not in UNDERLAYS:
            self.fail("underlay", underlay, f"must be one of {', '.join(UNDERLAYS)}")
        external = doc.get("externalClient", False)
        if not isinstance(external, bool):
            self.fail("externalClient", external, "must be true or false")
        if external:
            self.name(EXTERNAL_NAME, "(external client)", IFNAME_MAX, "external client")
        proxy = self.mapping(doc.get("kubeProxy") or {}, "kubeProxy", KUBE_PROXY_KEYS)
        proxy_mode = proxy.get("mode", "")  # "": kube-proxy's default, as its own config says
        if not isinstance(proxy_mode, str) or (
                self.proxy_modes is not None and proxy_mode not in self.proxy_modes + [""]):
            self.fail("kubeProxy.mode", proxy_mode, "must be one of "
                      f"{', '.join(self.proxy_modes)}" if self.proxy_modes else "must be a name")
        netpol = self.mapping(doc.get("networkPolicy") or {}, "networkPolicy",
                              NETWORK_POLICY_KEYS)
        enforce = netpol.get("enforce")
        if enforce is not None and not isinstance(enforce, bool):
            self.fail("networkPolicy.enforce", enforce, "must be true or false")
        spec = ClusterSpec(name, str(self.path), pod_cidr, prefix, mtu, mode,
                           tuple(racks), tuple(nodes), underlay,
                           self.manifest_paths(doc.get("manifests")), external, proxy_mode,
                           enforce, ip_family=family, pod_cidr_v6=pod_cidr_v6,
                           node_prefix_v6=prefix_v6)
        return read_options(spec, self.options, doc)

    def manifest_paths(self, docs: object) -> tuple[str, ...]:
        """Paths as given, relative to the topology file's directory."""
        if docs is None:
            return ()
        if not isinstance(docs, list) or not all(isinstance(d, str) and d for d in docs):
            self.fail("manifests", docs, "must be a list of files or directories")
        base = os.path.dirname(os.path.abspath(str(self.path)))
        return tuple(os.path.normpath(os.path.join(base, d)) for d in docs)

    def racks(self, docs: object, bandwidth: float | None, delay: float | None,
              pod_cidr: ipaddress.IPv4Network,
              pod_cidr_v6: ipaddress.IPv6Network | None) -> list[RackSpec]:
        if docs is None:
            docs = [{"name": "rack1"}]
        if not isinstance(docs, list) or not docs:
            self.fail("racks", docs, "must be a non-empty list")
        racks: list[RackSpec] = []
        families = IP_FAMILIES["dual" if pod_cidr_v6 is not None else "ipv4"]
        for i, doc in enumerate(docs):
            fld = f"racks[{i}]"
            doc = self.mapping(doc, fld, RACK_KEYS)
            name = self.name(doc.get("name"), f"{fld}.name", IFNAME_MAX, "rack")
            subnet, subnet_v6 = self.cidrs(doc.get("subnet", f"192.168.{i + 1}.0/24"),
                                           f"{fld}.subnet", families, "")
            if pod_cidr_v6 is not None and subnet_v6 is None:
                subnet_v6 = rack_subnet_v6(subnet)
            if subnet_v6 is not None and subnet_v6.prefixlen > 112:
                self.fail(f"{fld}.subnet", str(subnet_v6), "an IPv6 rack subnet must be /112 "
                          "or larger: hosts take the digits of their IPv4 numbers (::11, ::254)")
            for net, pods in ((subnet, pod_cidr), (subnet_v6, pod_cidr_v6)):
                if net is not None and pods is not None and net.overlaps(pods):
                    self.fail(f"{fld}.subnet", str(net), f"overlaps podCIDR {pods}")
            for other in racks:
                for net, taken in ((subnet, other.subnet), (subnet_v6, other.subnet_v6)):
                    if net is not None and taken is not None and net.overlaps(taken):
                        self.fail(f"{fld}.subnet", str(net),
                                  f"overlaps rack {other.name}'s subnet {taken}")
            bw = doc.get("bandwidth", bandwidth)
            if bw is not None:
                bw = self.number(bw, f"{fld}.bandwidth", 1, 100000, float)
            dl = doc.get("delay", delay)
            if dl is not None:
                dl = self.number(dl, f"{fld}.delay", 0, 10000, float)
            zone = doc.get("zone", name)  # the label topology.kubernetes.io/zone of its nodes
            if not isinstance(zone, str) or not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*"
                                                         r"[A-Za-z0-9])?$", zone) or len(zone) > 63:
                self.fail(f"{fld}.zone", zone, "must be a label value (letters, digits, '-', "
                          "'_', '.', at most 63)")
            racks.append(RackSpec(name, subnet, bw, dl or None, zone, subnet_v6))
        return racks

    def nodes(self, docs: object, racks: list[RackSpec]) -> list[NodeSpec]:
        if not isinstance(docs, list) or not docs:
            self.fail("nodes", docs, "must be a non-empty list of nodes")
        rack_names = [r.name for r in racks]
        per_rack = {r.name: 0 for r in racks}
        nodes = []
        for i, doc in enumerate(docs):
            fld = f"nodes[{i}]"
            doc = self.mapping(doc, fld, NODE_KEYS)
            name = self.name(doc.get("name"), f"{fld}.name", IFNAME_MAX, "node")
            rack_name = doc.get("rack", rack_names[0] if len(racks) == 1 else None)
            if rack_name not in rack_names:
                self.fail(f"{fld}.rack", rack_name,
                          f"no such rack (racks: {', '.join(rack_names)})")
            rack = racks[rack_names.index(rack_name)]
            host = FIRST_NODE_HOST + per_rack[rack_name]
            per_rack[rack_name] += 1
            if host >= rack.subnet.num_addresses - 1:
                self.fail(f"{fld}.rack", rack_name, f"subnet {rack.subnet} has no address left "
                          f"for node {name} (nodes start at host .{FIRST_NODE_HOST})")
            ip = ipaddress.IPv4Interface(f"{rack.subnet[host]}/{rack.subnet.prefixlen}")
            ip_v6 = host_v6(rack.subnet_v6, host) if rack.subnet_v6 else None
            pods = self.pods(doc.get("pods", 0), f"{fld}.pods", name)
            nodes.append(NodeSpec(name, rack_name, ip, tuple(pods), ip_v6))
        return nodes

    def pods(self, doc: object, fld: str, node: str) -> list[PodSpec]:
        if isinstance(doc, int) and not isinstance(doc, bool):
            if not 0 <= doc <= 250:
                self.fail(fld, doc, "pod count must be from 0 to 250")
            doc = [{"name": f"{node}-pod{k + 1}"} for k in range(doc)]
        if not isinstance(doc, list):
            self.fail(fld, doc, "must be a pod count or a list of pods")
        pods = []
        for i, pdoc in enumerate(doc):
            pfld = f"{fld}[{i}]"
            pdoc = self.mapping(pdoc, pfld, POD_KEYS)
            namespace = pdoc.get("namespace", "default")
            if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
                self.fail(f"{pfld}.namespace", namespace, "must be a DNS label")
            # pod names are scoped to their namespace, as in Kubernetes; they may not be a
            # node's or rack's name, which commands take in the same place
            name = self.name(pdoc.get("name"), f"{pfld}.name", 63, "pod",
                             key=(namespace, pdoc.get("name")))
            labels = pdoc.get("labels", {})
            if not isinstance(labels, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                self.fail(f"{pfld}.labels", labels, "must map strings to strings")
            containers = self.containers(pdoc.get("containers"), f"{pfld}.containers")
            pods.append(PodSpec(name, namespace, node, dict(labels), containers))
        return pods

    def containers(self, docs: object, fld: str) -> tuple[ContainerSpec, ...]:
        if docs is None:
            return (ContainerSpec("main", DEFAULT_COMMAND),)
        if not isinstance(docs, list) or not docs:
            self.fail(fld, docs, "must be a non-empty list of containers")
        seen, out = set(), []
        for i, doc in enumerate(docs):
            cfld = f"{fld}[{i}]"
            doc = self.mapping(doc, cfld, CONTAINER_KEYS)
            name = doc.get("name")
            if not isinstance(name, str) or not DNS_LABEL.match(name) or name in seen:
                self.fail(f"{cfld}.name", name, "must be a unique DNS label within the pod")
            seen.add(name)
            command = doc.get("command", list(DEFAULT_COMMAND))
            if isinstance(command, str):
                command = ["sh", "-c", command]
            if not isinstance(command, list) or not command or not all(
                    isinstance(a, str) for a in command):
                self.fail(f"{cfld}.command", command, "must be a string or a list of strings")
            if any("\0" in a for a in command):
                self.fail(f"{cfld}.command", command, "holds a NUL character, which no "
                          "command line can carry")
            out.append(ContainerSpec(name, tuple(command)))
        return tuple(out)
