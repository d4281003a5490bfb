"""Reading Ingress, IngressClass and Secret manifests, checked as the API server checks them
(networking.k8s.io/v1 validation): every Ingress path absolute and typed (Exact, Prefix,
ImplementationSpecific), hosts DNS names or one leading wildcard label, a backend's port a
number or a name, a kubernetes.io/tls Secret carrying tls.crt and tls.key. Objects keep the
API's shape (`spec` as a dict), which the controller renders nginx's configuration from."""
import base64
import binascii
import re

from testbed.errors import brief
from testbed.manifests.fields import DNS_SUBDOMAIN, EVERY_KEY, FieldReader, Fields, Node
from testbed.manifests.kinds import Ingress, IngressClass, Secret

PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
WILDCARD_HOST = re.compile(r"^\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
INGRESS_KEYS = {"ingressClassName", "defaultBackend", "tls", "rules"}
SECRET_KEYS = {"type", "data", "stringData"}
TLS_TYPE = "kubernetes.io/tls"


class IngressReader(FieldReader):
    def ingress(self, name: str, namespace: str, spec: Fields, source: str) -> Ingress:
        out = {}
        if "ingressClassName" in spec:
            out["ingressClassName"] = self.name(spec["ingressClassName"],
                                                "spec.ingressClassName")
        if "defaultBackend" in spec:
            out["defaultBackend"] = self.backend(spec["defaultBackend"], "spec.defaultBackend")
        if "tls" in spec:
            out["tls"] = []
            for i, node in enumerate(self.sequence(spec["tls"], "spec.tls")):
                fld = f"spec.tls[{i}]"
                tls = self.mapping(node, fld, {"hosts", "secretName"})
                entry = {"hosts": [self.host(h, f"{fld}.hosts[{j}]") for j, h in enumerate(
                    self.sequence(tls["hosts"], f"{fld}.hosts"))] if "hosts" in tls else []}
                if "secretName" in tls:
                    entry["secretName"] = self.name(tls["secretName"], f"{fld}.secretName")
                out["tls"].append(entry)
        rules = []
        for i, node in enumerate(self.sequence(spec["rules"], "spec.rules")
                                 if "rules" in spec else []):
            fld = f"spec.rules[{i}]"
            rule_map = self.mapping(node, fld, {"host", "http"})
            rule = {"host": self.host(rule_map["host"], f"{fld}.host")} \
                if "host" in rule_map else {}
            if "http" in rule_map:
                http = self.mapping(rule_map["http"], f"{fld}.http", {"paths"})
                if "paths" not in http:
                    self.fail(rule_map["http"], f"{fld}.http.paths", "missing")
                paths = self.sequence(http["paths"], f"{fld}.http.paths")
                rule["http"] = {"paths": [self.ingress_path(p, f"{fld}.http.paths[{j}]")
                                          for j, p in enumerate(paths)]}
            rules.append(rule)
        if rules:
            out["rules"] = rules
        if not rules and "defaultBackend" not in out:
            self.fail(None, "spec", "either `defaultBackend` or `rules` must be specified")
        return Ingress(name, namespace, out, source)

    def ingress_path(self, node: Node, fld: str) -> dict:
        p = self.mapping(node, fld, {"path", "pathType", "backend"})
        for key in ("pathType", "backend"):
            if key not in p:
                self.fail(node, f"{fld}.{key}", "missing")
        path_type = self.string(p["pathType"], f"{fld}.pathType")
        if path_type not in PATH_TYPES:
            self.fail(p["pathType"], f"{fld}.pathType",
                      f"{brief(path_type)} is not one of {', '.join(PATH_TYPES)}")
        path = self.string(p["path"], f"{fld}.path") if "path" in p else "/"
        if not path.startswith("/"):
            self.fail(p["path"], f"{fld}.path", f"{brief(path)}: must be an absolute path "
                      "(begin with '/')")
        return {"path": path, "pathType": path_type,
                "backend": self.backend(p["backend"], f"{fld}.backend")}

    def backend(self, node: Node | None, fld: str) -> dict:
        b = self.mapping(node, fld, {"service", "resource"})
        if "resource" in b:
            self.fail(b["resource"], f"{fld}.resource", "resource backends are not "
                      "implemented by the testbed (name a Service)")
        if "service" not in b:
            self.fail(node, f"{fld}.service", "missing")
        svc = self.mapping(b["service"], f"{fld}.service", {"name", "port"})
        for key in ("name", "port"):
            if key not in svc:
                self.fail(b["service"], f"{fld}.service.{key}", "missing")
        port = self.mapping(svc["port"], f"{fld}.service.port", {"number", "name"})
        if ("number" in port) == ("name" in port):
            self.fail(svc["port"], f"{fld}.service.port", "needs exactly one of number or name")
        value = {"number": self.integer(port["number"], f"{fld}.service.port.number", 1,
                                        65535)} if "number" in port else \
            {"name": self.port_name(port["name"], f"{fld}.service.port.name")}
        return {"service": {"name": self.name(svc["name"], f"{fld}.service.name"),
                            "port": value}}

    def host(self, node: Node, fld: str) -> str:
        value = self.string(node, fld)
        if not (WILDCARD_HOST.match(value) or (DNS_SUBDOMAIN.match(value) and
                                               not re.match(r"^[0-9.]+$", value))):
            self.fail(node, fld, f"{brief(value)} is not a DNS name (a wildcard may only be the "
                      "first label, `*.example.com`; an IP address is not allowed)")
        return value

    def ingress_class(self, name: str, spec: Fields, annotations: dict[str, str],
                      source: str) -> IngressClass:
        controller = self.string(spec["controller"], "spec.controller") \
            if "controller" in spec else ""
        default = annotations.get("ingressclass.kubernetes.io/is-default-class") == "true"
        return IngressClass(name, controller, default, source)

    def secret(self, name: str, namespace: str, top: Fields, source: str) -> Secret:
        stype = self.string(top["type"], "type") if "type" in top else "Opaque"
        data = {}
        for key, value in (self.mapping(top["data"], "data", EVERY_KEY) if "data" in top
                           else {}).items():
            text = self.string(value, f"data.{key}", allow_empty=True)
            try:
                base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                self.fail(value, f"data.{key}", "is not base64")
            data[key] = text
        for key, value in (self.mapping(top["stringData"], "stringData", EVERY_KEY)
                           if "stringData" in top else {}).items():
            data[key] = base64.b64encode(self.string(value, f"stringData.{key}",
                                                     allow_empty=True).encode()).decode()
        if stype == TLS_TYPE:
            for key in ("tls.crt", "tls.key"):
                if key not in data:
                    self.fail(top.get("data"), f"data[{key}]", f"required for a Secret of type "
                              f"{TLS_TYPE}")
        return Secret(name, namespace, stype, data, source)
