"""Write testbed/apiserver/wire_schema.json: the protobuf field numbers of the Kubernetes API
objects the API server serves, from the generated.proto files of k8s.io/api and
k8s.io/apimachinery (a checkout of each, or the files copied into one directory), and from
their Go types (types.go, *_types.go) whether JSON leaves a field's zero value out (a field
`omitempty` and not a pointer is left out when zero, as Go's encoding/json leaves it out) and
whether an embedded struct's fields are inlined into its parent's JSON.

    python scripts/k8s_wire_schema.py PROTO_DIR [PROTO_DIR ...]

kubectl and client-go send the built-in kinds as protobuf (`application/vnd.kubernetes.protobuf`)
when they create them through a typed client (`kubectl create namespace|configmap|deployment…`);
the server decodes those bodies with this table (apiserver/protobuf.py). Only the messages
reachable from the served kinds (and DeleteOptions) are kept. Beside them, each list field's
`patchStrategy` and `patchMergeKey` tags (message -> JSON name -> [strategy, key]), which the
OpenAPI documents carry as x-kubernetes-patch-strategy and x-kubernetes-patch-merge-key.
"""
import json
import os
import re
import sys

GO_STRUCT = re.compile(r"^type (\w+) struct \{")
GO_FIELD = re.compile(r'^\s+\w+\s+(\S+)\s+`json:"([^"]*)".*protobuf:"[^,"]+,(\d+),')
# an embedded struct (a type, no field name): with an empty JSON name, its fields are inlined
# into the parent's JSON (Probe's ProbeHandler, IngressRule's IngressRuleValue, Volume's
# VolumeSource), though protobuf keeps it as a field of its own
GO_EMBEDDED = re.compile(r'^\s+\*?([\w.]+)\s+`json:"([^"]*)".*protobuf:"[^,"]+,(\d+),')
PATCH_STRATEGY = re.compile(r'patchStrategy:"([^"]*)"')
PATCH_MERGE_KEY = re.compile(r'patchMergeKey:"([^"]*)"')
FIELD = re.compile(r"^\s*(optional|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP = re.compile(r"^\s*map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
ROOTS = {  # apiVersion/kind -> message
    **{f"v1/{k}": f"k8s.io.api.core.v1.{k}" for k in (
        "Namespace", "Node", "Pod", "Service", "Endpoints", "ConfigMap", "Secret",
        "ServiceAccount", "Event")},
    **{f"apps/v1/{k}": f"k8s.io.api.apps.v1.{k}" for k in ("Deployment", "ReplicaSet")},
    **{f"networking.k8s.io/v1/{k}": f"k8s.io.api.networking.v1.{k}" for k in (
        "NetworkPolicy", "Ingress", "IngressClass")},
    "discovery.k8s.io/v1/EndpointSlice": "k8s.io.api.discovery.v1.EndpointSlice",
    "authentication.k8s.io/v1/TokenRequest": "k8s.io.api.authentication.v1.TokenRequest",
    "meta.k8s.io/v1/DeleteOptions": "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
}
SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float"}


def parse(path):
    """{full message name: {number: [name, type, repeated]}} of one .proto file; a map field
    is ["name", "map", [key type, value type]]."""
    package, current, out = "", None, {}
    with open(path) as f:
        for line in f:
            line = line.split("//")[0]
            if line.startswith("package "):
                package = line.split()[1].rstrip(";")
            elif line.startswith("message "):
                current = f"{package}.{line.split()[1]}"
                out[current] = {}
            elif line.startswith("}"):
                current = None
            elif current and (m := MAP.match(line)):
                key, value, name, number = m.groups()
                out[current][number] = [name, "map", [key, value]]
            elif current and (m := FIELD.match(line)):
                label, kind, name, number = m.groups()
                out[current][number] = [name, kind, label == "repeated"]
    return package, out


def go_fields(path):
    """{(struct, number): (leave zero out, inlined)} of a Go types file, and
    {(struct, JSON name): (patchStrategy, patchMergeKey)} of its fields that have a strategy."""
    out, patch, current = {}, {}, None
    with open(path) as f:
        for line in f:
            if m := GO_STRUCT.match(line):
                current = m.group(1)
            elif line.startswith("}"):
                current = None
            elif current and (m := GO_FIELD.match(line)):
                go_type, json_tag, number = m.groups()
                omit = "omitempty" in json_tag.split(",")[1:] and not go_type.startswith("*")
                out[(current, number)] = (omit, False)
                if strategy := PATCH_STRATEGY.search(line):
                    key = PATCH_MERGE_KEY.search(line)
                    patch[(current, json_tag.split(",")[0])] = (strategy.group(1),
                                                                key.group(1) if key else None)
            elif current and (m := GO_EMBEDDED.match(line)):
                _go_type, json_tag, number = m.groups()
                out[(current, number)] = (False, json_tag.split(",")[0] == "")
    return out, patch


def resolve(kind, package, known):
    if kind in SCALARS:
        return kind
    kind = kind.lstrip(".")
    if kind in known:
        return kind
    local = f"{package}.{kind}"
    if local in known:
        return local
    raise SystemExit(f"unknown type {kind} in {package}")


def main(dirs):
    # Go facts keyed by the directory that holds both a package's types.go and its
    # generated.proto: struct names repeat across packages (core's and discovery's EndpointPort)
    messages, packages, where, omitted, patches = {}, {}, {}, {}, {}
    for d in dirs:
        for root, _dirs, files in os.walk(d):
            for name in files:
                if name.endswith(".go") and "types" in name:
                    fields, patch = go_fields(os.path.join(root, name))
                    omitted.update({(root, *key): value for key, value in fields.items()})
                    patches.update({(root, *key): value for key, value in patch.items()})
                if name.endswith(".proto"):
                    package, found = parse(os.path.join(root, name))
                    for message in found:
                        packages[message], where[message] = package, root
                    messages.update(found)
    kept, patch_of, todo = {}, {}, list(ROOTS.values())
    while todo:
        message = todo.pop()
        if message in kept:
            continue
        struct = (where[message], message.rsplit(".", 1)[1])
        fields = {}
        for number, (name, kind, extra) in messages[message].items():
            omit, inline = omitted.get((*struct, number), (False, False))
            if kind == "map":
                key, value = (resolve(t, packages[message], messages) for t in extra)
                fields[number] = [name, "map", [key, value], omit, False]
                todo.append(value) if value not in SCALARS else None
            else:
                kind = resolve(kind, packages[message], messages)
                fields[number] = [name, kind, extra, omit, inline]
                todo.append(kind) if kind not in SCALARS else None
            if (*struct, name) in patches:
                patch_of.setdefault(message, {})[name] = list(patches[(*struct, name)])
        kept[message] = fields
    out = os.path.join(os.path.dirname(__file__), "..", "testbed", "apiserver",
                       "wire_schema.json")
    with open(out, "w") as f:
        json.dump({"kinds": ROOTS, "messages": dict(sorted(kept.items())),
                   "patch": dict(sorted(patch_of.items()))}, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"{len(kept)} messages written to {os.path.normpath(out)}; "
          f"{sum(f[3] for m in kept.values() for f in m.values())} fields left out when zero")


if __name__ == "__main__":
    main(sys.argv[1:])
