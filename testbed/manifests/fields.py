"""Reading composed YAML nodes with the line of each at hand, so that every problem is one
ManifestError naming the file, the line, the object and the field: the API server's rules for
names, labels and port names, and the field shapes every kind uses."""
import re
from collections.abc import Container
from typing import NoReturn

import yaml

from testbed.errors import brief
from testbed.manifests.kinds import ManifestError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# the API server's rules (k8s.io/apimachinery/pkg/util/validation)
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def label_key_problem(key: str) -> str | None:
    """Why `key` is no label key (an optional DNS subdomain prefix and '/', then a name of at
    most 63 characters), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return f"{brief(key)}: the prefix before '/' must be a DNS subdomain"
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        return (f"{brief(key)} is not a label key (at most 63 letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit, after an optional prefix/)")
    return None
PROTOCOLS = ("TCP", "UDP", "SCTP")
Node = yaml.Node  # a composed node: its value and the line it starts on
Fields = dict[str, yaml.Node]  # a mapping's fields by name, each still a node


class FieldReader:
    """One YAML document's fields, read with the line of every node at hand for errors."""

    def __init__(self, path: str, warnings: list[str]):
        self.path = path
        self.warnings = warnings
        self.what = "document"

    # --- composed-node helpers -------------------------------------------------------------
    def fail(self, node: Node | None, fld: str, problem: str) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        raise ManifestError(self.path, line, f"{self.what}: {fld}: {problem}")

    def warn(self, node: Node, fld: str, problem: str) -> None:
        self.warnings.append(f"{self.path}:{node.start_mark.line + 1}: {self.what}: {fld}: "
                             f"{problem}")

    def mapping(self, node: Node | None, fld: str, known: Container[str]) -> Fields:
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

    def string(self, node: Node | None, fld: str, allow_empty: bool = False) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str" or \
                (not node.value and not allow_empty):
            self.fail(node, fld, "must be a string")
        if "\0" in node.value:  # no argv, environment or name can carry one
            self.fail(node, fld, f"{brief(node.value)} holds a NUL character")
        return node.value

    def integer(self, node: Node | None, fld: str, low: int, high: int) -> int:
        value = yaml.safe_load(node.value) if isinstance(node, yaml.ScalarNode) and \
            node.tag == "tag:yaml.org,2002:int" else None
        if not isinstance(value, int) or not low <= value <= high:
            self.fail(node, fld, f"must be an integer from {low} to {high}")
        return value

    def name(self, node: Node | None, fld: str) -> str:
        value = self.string(node, fld)
        if not DNS_LABEL.match(value) or len(value) > 63:
            self.fail(node, fld, f"{brief(value)} is not a DNS label (lower-case letters, digits, "
                      "'-', at most 63)")
        return value

    def port_name(self, node: Node | None, fld: str) -> str:
        """A named port as the API server takes it (IANA_SVC_NAME)."""
        value = self.string(node, fld)
        if not IANA_SVC_NAME.match(value) or len(value) > 15 or "--" in value or \
                not re.search("[a-z]", value):
            self.fail(node, fld, f"{brief(value)} is not a port name (at most 15 lower-case "
                      "letters, digits and '-', at least one letter, no '-' at either end "
                      "or twice in a row)")
        return value

    def labels(self, node: Node | None, fld: str) -> dict[str, str]:
        if node is None:
            return {}
        raw = self.mapping(node, fld, known=EVERY_KEY)
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

    def strings(self, node: Node | None, fld: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, fld, "must be a list of strings")
        return tuple(self.string(item, f"{fld}[{i}]", allow_empty=True)
                     for i, item in enumerate(node.value))

    def sequence(self, node: Node | None, fld: str) -> list[Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, fld, "must be a list")
        return node.value

    def protocol(self, node: Node | None, fld: str) -> str:
        if node is None:
            return "TCP"
        value = self.string(node, fld)
        if value not in PROTOCOLS:
            self.fail(node, fld, f"{brief(value)}: the testbed implements {', '.join(PROTOCOLS)}")
        return value


class _Everything:
    """A key set holding every key: label and annotation maps take any key."""

    def __contains__(self, _key: object) -> bool:
        return True


EVERY_KEY = _Everything()
