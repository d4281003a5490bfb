"""Discovery documents, as kube-apiserver serves them: /version, /api, /apis and each group
version's APIResourceList (the legacy discovery every kubectl falls back to when it is not
answered in the aggregated format)."""
from .resources import RESOURCES, groups

VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0-testbed",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "python", "compiler": "testbed",
           "platform": "linux/amd64"}


# subresource: (verbs, kind; None for the resource's own kind)
SUBRESOURCES = {
    "status": (("get", "patch", "update"), None),
    "finalize": (("update",), None),
    "scale": (("get", "patch", "update"), "Scale"),
    "log": (("get",), "Pod"),
    "exec": (("create", "get"), "PodExecOptions"),
    "attach": (("create", "get"), "PodAttachOptions"),
    "portforward": (("create", "get"), "PodPortForwardOptions"),
    "proxy": (("create", "delete", "get", "patch", "update"), "NodeProxyOptions"),
    "binding": (("create",), "Binding"),
    "eviction": (("create",), "Eviction"),
    "token": (("create",), "TokenRequest"),
}


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> dict:
    out = []
    for group, versions in groups().items():
        listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        out.append({"name": group, "versions": listed, "preferredVersion": listed[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}


def api_group(group: str) -> dict | None:
    versions = groups().get(group)
    if not versions:
        return None
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": listed,
            "preferredVersion": listed[0]}


def resource_list(group: str, version: str) -> dict | None:
    found = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not found:
        return None
    entries = []
    for r in found:
        entry = {"name": r.name, "singularName": r.singular_name, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        for sub in r.subresources:
            verbs, kind = SUBRESOURCES[sub]
            entries.append({"name": f"{r.name}/{sub}", "singularName": "",
                            "namespaced": r.namespaced, "kind": kind or r.kind,
                            "verbs": list(verbs)})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": entries}
