"""The environment variables the kubelet gives a container for the Services that exist when
it starts (pkg/kubelet/envvars): for each Service with a ClusterIP in the pod's namespace (all
of them only with enableServiceLinks, the default) and the API server's `kubernetes` in
default (always), <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT (the first port),
<NAME>_SERVICE_PORT_<PORT NAME> per named port, and the Docker-link variables
<NAME>_PORT=tcp://ip:port, <NAME>_PORT_<port>_<PROTO>{,_PROTO,_PORT,_ADDR}. A container's own
`env` comes after, and wins."""

MASTER_SERVICES = {("default", "kubernetes")}


def _name(text):
    return text.upper().replace("-", "_")


def service_env(services: dict, namespace: str, links: bool = True) -> list[tuple[str, str]]:
    """[(name, value)] for a container of a pod in `namespace`; `services` as the run's state
    keeps them ({"ns/name": ServiceRecord})."""
    chosen = {}
    for key, record in sorted(services.items()):
        ns, name = key.split("/", 1)
        if record.cluster_ip in ("", "None") or not record.ports:
            continue  # headless and ExternalName Services have none
        if (ns, name) in MASTER_SERVICES:
            chosen.setdefault(name, record)
        elif ns == namespace and links:
            chosen[name] = record
    out = []
    for name, record in sorted(chosen.items()):
        prefix, ip = _name(name), record.cluster_ip
        out += [(f"{prefix}_SERVICE_HOST", ip), (f"{prefix}_SERVICE_PORT",
                                                 str(record.ports[0].port))]
        out += [(f"{prefix}_SERVICE_PORT_{_name(p.name)}", str(p.port))
                for p in record.ports if p.name]
        for i, p in enumerate(record.ports):
            proto = (p.protocol or "TCP").lower()
            url = f"{proto}://{ip}:{p.port}"
            if i == 0:
                out.append((f"{prefix}_PORT", url))
            base = f"{prefix}_PORT_{p.port}_{proto.upper()}"
            out += [(base, url), (f"{base}_PROTO", proto), (f"{base}_PORT", str(p.port)),
                    (f"{base}_ADDR", ip)]
    return out
