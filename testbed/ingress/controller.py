"""The ingress controller, as ingress-nginx runs it: a real nginx (Debian's) in pod
ingress-nginx-controller-* of namespace ingress-nginx, behind Service
ingress-nginx/ingress-nginx-controller of type LoadBalancer (HTTP 80, HTTPS 443, and their
NodePorts), serving IngressClass `nginx` (controller k8s.io/ingress-nginx), which the
testbed marks the default class so that Ingresses without ingressClassName are served too.

It starts with the first Ingress applied. After every change of Ingresses, Secrets,
Services or pods, sync() renders nginx.conf (nginx.py) from the state, checks it with
`nginx -t`, and reloads nginx with SIGHUP when it changed: nginx starts new workers with the
new configuration and lets the old ones finish their connections, so established
connections are not dropped. TLS Secrets are written to the controller's directory (0600);
a Secret that is not a matching certificate and key is named in a warning and its hosts get
the fake certificate ingress-nginx generates (CN "Kubernetes Ingress Controller Fake
Certificate").
"""
import base64
import os
import shutil
import signal
import ssl
import subprocess

from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.processes import pid_is
from testbed.host.waiting import wait_until
from testbed.ingress import nginx
from testbed.kubeproxy import services
from testbed.manifests import kinds
from testbed.model.context import PodHost
from testbed.model.records import NamespaceRecord
from testbed.model.state import RunState
from testbed.model.topology import ContainerSpec, PodSpec

NAMESPACE, NAME = "ingress-nginx", "ingress-nginx-controller"
LABELS = {"app.kubernetes.io/name": "ingress-nginx",
          "app.kubernetes.io/component": "controller"}
CLASS, CONTROLLER = "nginx", "k8s.io/ingress-nginx"
FAKE_SUBJECT = "/O=Acme Co/CN=Kubernetes Ingress Controller Fake Certificate"
READY_TIMEOUT_S = 10.0


def missing_tools() -> str:
    """Why the controller cannot run here ("" when it can)."""
    if shutil.which("nginx") and shutil.which("openssl"):
        return ""
    return ("the ingress controller needs nginx and openssl, which this machine lacks: "
            "scripts/install.sh installs them")


def served_class(state: RunState, spec: dict) -> bool:
    """Whether this controller serves an Ingress: its class is ours, or it names none and
    ours is the default."""
    name = spec.get("ingressClassName")
    classes = state.ingress_classes
    if name:
        return classes.get(name, {}).get("controller") == CONTROLLER
    return any(c.get("default") and c.get("controller") == CONTROLLER
               for c in classes.values())


class IngressController:
    def __init__(self):
        self.pod = None       # "<ns>/<name>" of the controller pod once started
        self.directory = None
        self.rendered = None  # the configuration nginx runs
        self.warnings = []    # of the last sync

    @property
    def conf(self) -> str:
        return os.path.join(self.directory, "nginx.conf")

    def start(self, cluster: PodHost) -> None:
        if self.pod is not None:
            return
        missing = missing_tools()
        if missing:
            raise TestbedError(missing)
        state = cluster.state
        self.directory = state.subdir("ingress-nginx")
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.directory, "tmp", kind), exist_ok=True)
        self._fake_certificate()
        state.namespaces.setdefault(NAMESPACE, NamespaceRecord(created=state.created))
        state.ingress_classes.setdefault(CLASS, {"controller": CONTROLLER, "default": True})
        self._write(self._render(cluster))
        pod = PodSpec(f"{NAME}-{kinds.pod_suffix(state.name + NAME)}", NAMESPACE,
                      cluster.least_busy_node(), dict(LABELS), (ContainerSpec(
                          "controller", ("nginx", "-c", self.conf, "-g", "daemon off;")),))
        record = cluster.add_pod(pod)
        self.pod = pod.key
        services.add(state, kinds.Service(
            NAME, NAMESPACE, "LoadBalancer", dict(LABELS),
            (kinds.ServicePort(80, 80, "http"), kinds.ServicePort(443, 443, "https")),
            source="the ingress controller"), cluster.spec.load_balancer_addresses)
        state.ingress = {"pod": pod.key, "dir": self.directory}
        state.save()

        def listening():
            out = netns.run(netns.in_pod(record.netns, ["ss", "-Hltn"]), check=False)
            return ":80 " in out and ":443 " in out
        if not wait_until(listening, READY_TIMEOUT_S):
            raise TestbedError(f"ingress controller: nginx in pod {pod.key} did not listen on "
                               f"80 and 443 (see {self.directory}/error.log)")

    def recall(self, state: RunState) -> None:
        """Take up a running controller (adopt.py)."""
        self.pod, self.directory = state.ingress["pod"], state.ingress["dir"]
        with open(self.conf) as f:
            self.rendered = f.read()

    def sync(self, cluster: PodHost) -> None:
        if self.pod is None:
            return
        if self.pod not in cluster.state.pods:  # namespace ingress-nginx was deleted
            self.pod, self.rendered, cluster.state.ingress = None, None, {}
            return
        text = self._render(cluster)
        if text == self.rendered:
            return
        entry = cluster.state.pods[self.pod].containers["controller"]
        if not pid_is(entry.pid, entry.start):
            raise TestbedError(f"ingress controller: nginx in pod {self.pod} is not running "
                               f"(see {self.directory}/error.log)")
        candidate = self.conf + ".new"
        with open(candidate, "w") as f:
            f.write(text)
        check = subprocess.run(["nginx", "-t", "-q", "-c", candidate], capture_output=True,
                               text=True)
        if check.returncode != 0:
            os.unlink(candidate)
            raise TestbedError(f"ingress controller: nginx refused the new configuration "
                               f"(the old one keeps serving): {check.stderr.strip()[-300:]}")
        before = _children(entry.pid)
        os.replace(candidate, self.conf)
        self.rendered = text
        os.kill(entry.pid, signal.SIGHUP)
        # reloaded once a worker of the new configuration runs and every old one has stopped
        # taking connections (it finishes the ones it has: "worker process is shutting down")
        wait_until(lambda: bool(_children(entry.pid) - before) and
                   all(_retired(pid) for pid in before), READY_TIMEOUT_S)

    # --- rendering -----------------------------------------------------------------------
    def _render(self, cluster):
        state = cluster.state
        p = _plan(state, lambda ns, name: self._certificate(state, ns, name))
        self.warnings = p.warnings
        return nginx.render(p, self.directory, self._fake_paths())

    def _write(self, text):
        with open(self.conf, "w") as f:
            f.write(text)
        self.rendered = text

    def _fake_paths(self):
        return (os.path.join(self.directory, "fake.crt"), os.path.join(self.directory,
                                                                       "fake.key"))

    def _fake_certificate(self):
        cert, key = self._fake_paths()
        if not os.path.exists(cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "365",
                            "-subj", FAKE_SUBJECT, "-keyout", key, "-out", cert],
                           check=True, capture_output=True)
            os.chmod(key, 0o600)

    def _certificate(self, state, namespace, name):
        """((cert, key) paths, problem) of a TLS Secret, written out and checked as a pair."""
        secret = state.secrets.get(f"{namespace}/{name}")
        if secret is None:
            return None, f"TLS Secret {namespace}/{name} does not exist"
        if secret["type"] != "kubernetes.io/tls":
            return None, f"Secret {namespace}/{name} is of type {secret['type']}, not " \
                "kubernetes.io/tls"
        base = os.path.join(self.directory, "certs", f"{namespace}-{name}")
        os.makedirs(os.path.dirname(base), exist_ok=True)
        paths = (base + ".crt", base + ".key")
        for path, field in zip(paths, ("tls.crt", "tls.key")):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64decode(secret["data"][field]))
        try:  # what nginx would refuse to load, found before it is asked to
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(*paths)
        except ssl.SSLError as e:
            return None, (f"TLS Secret {namespace}/{name}: tls.crt and tls.key are not a "
                          f"certificate and its key ({e.reason or e})")
        return paths, ""


def routes(state: RunState, key: str) -> list[str]:
    """How nginx routes an Ingress's rules now: each path, its nginx locations, and the
    endpoints of the upstream it proxies to (`testbed trace ... ing/NAME`)."""
    spec = state.ingresses[key]["spec"]
    if not served_class(state, spec):
        return [f"Ingress {key} names class {spec.get('ingressClassName')!r}, which this "
                f"controller ({CONTROLLER}) does not serve"]
    p = _plan(state, lambda ns, name: (None, ""))  # routes only: no certificate written
    out = []
    for host, server in sorted(p.servers.items()):
        for (modifier, path), (backend, owner) in sorted(server.locations.items(),
                                                         key=lambda item: item[0][1]):
            if owner != key:
                continue
            where = f"{'*' if host == '_' else host} location {modifier + ' ' if modifier else ''}"
            target = backend.problem or (f"upstream {backend.upstream}: "
                                         f"{', '.join(backend.endpoints) or 'no endpoints (503)'}")
            out.append(f"{where}{path} -> {target}")
    out += [f"not served: {w}" for w in p.warnings if w.startswith(f"Ingress {key}:")]
    return out + ["nginx answers the connection itself and opens one of its own to an endpoint "
                  "of the upstream: that second connection is not this probe's"]


def _plan(state, certificate) -> nginx.Plan:
    """nginx's plan for the Ingresses this controller serves."""
    ingresses = [(key, rec["spec"], rec["created"]) for key, rec in
                 sorted(state.ingresses.items()) if served_class(state, rec["spec"])]
    return nginx.plan(ingresses, lambda ns, b: _backend(state, ns, b), certificate)


def _backend(state, namespace, backend):
    """A backend's upstream and endpoints, from the Service and its endpoints now."""
    svc = backend["service"]
    key = f"{namespace}/{svc['name']}"
    record = state.services.get(key)
    if record is None:
        return nginx.Backend(problem=f"Service {key} does not exist")
    wanted = svc["port"]
    port = next((p for p in record.ports if p.port == wanted.get("number") or
                 (p.name and p.name == wanted.get("name"))), None)
    if port is None:
        shown = wanted.get("number", wanted.get("name"))
        return nginx.Backend(problem=f"Service {key} has no port {shown}")
    found = services.endpoints(state, key)[port.name or str(port.port)]
    return nginx.Backend(f"{namespace}-{svc['name']}-{port.port}",
                         sorted(f"{ip}:{target}" for _pod, ip, target in found))


def _retired(pid):
    """Whether an nginx worker is gone or shutting down (its process title says so)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"shutting down" in f.read()
    except OSError:
        return True


def _children(pid):
    """The PIDs of a process's children (nginx's workers)."""
    out = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out |= {int(x) for x in f.read().split()}
    except OSError:
        pass
    return out
