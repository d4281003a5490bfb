"""One cluster's control plane as daemons the run owns: its etcd and its API server, started in
that order (each waited for until it answers), stopped in reverse, with the certificates and
the kubeconfig that reach them."""
import base64
import json
import os
import shutil
import ssl
import sys
import urllib.request
from collections.abc import Callable

import yaml

from testbed.auth.pki import Pki, make_pki
from testbed.errors import TestbedError
from testbed.host.daemons import Daemon, Ledger
from testbed.manifests.families import IPV4, IPV6, api_server_ip

from .etcd import etcd_argv, free_port

READY_TIMEOUT_S = 30.0
SERVER_NAMES = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local", "localhost"]


def context_name(cluster: str) -> str:
    """The kubeconfig's cluster, user and context name of a cluster (kind says kind-<name>)."""
    return f"testbed-{cluster}"


def kubeconfig(cluster: str, server: str, pki: Pki) -> str:
    """A kubeconfig for the cluster's admin, certificates inline, as `kind get kubeconfig`
    prints one."""
    def data(path):
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()
    name = context_name(cluster)
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": name, "cluster": {
               "certificate-authority-data": data(pki.ca_cert), "server": server}}],
           "users": [{"name": name, "user": {
               "client-certificate-data": data(pki.admin_cert),
               "client-key-data": data(pki.admin_key)}}],
           "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
           "current-context": name}
    return yaml.safe_dump(doc, sort_keys=False)


def admin_context(pki: Pki) -> ssl.SSLContext:
    """TLS as the admin: the cluster's CA trusted, the admin's certificate presented."""
    context = ssl.create_default_context(cafile=pki.ca_cert)
    context.load_cert_chain(pki.admin_cert, pki.admin_key)
    return context


PORT_ATTEMPTS = 3


def start_on_free_ports(state: Ledger, make: Callable[[], Daemon], ready: Callable[[], bool],
                        forget: Callable[[], object] = lambda: None) -> Daemon:
    """make() a daemon on ports it picks free, and start it. A port found free can be taken
    before the daemon binds it (an outgoing connection may get any port of the ephemeral
    range meanwhile): that start is tried again on other ports, after forget() undoes what
    the failed one left; PORT_ATTEMPTS in all. Any other failure is raised as it is."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        daemon = make()
        try:
            daemon.start(state, ready, READY_TIMEOUT_S)
            return daemon
        except TestbedError as e:
            if "address already in use" not in str(e) or attempt == PORT_ATTEMPTS:
                raise
            daemon.stop(state)
            forget()
    raise AssertionError("unreachable")


class ControlPlane:
    """etcd and the API server of one cluster, under `directory`."""

    def __init__(self, cluster: str, directory: str, host: str = "127.0.0.1",
                 service_ranges: str = "10.96.0.0/12"):
        self.cluster = cluster
        self.service_ranges = service_ranges  # kube-apiserver's --service-cluster-ip-range
        self.directory = directory
        self.host = host
        self.inside = None  # {"netns", "host", "port"}: where pods reach it
        self.pki = Pki(os.path.join(directory, "pki"))
        self.etcd = None
        self.apiserver = None
        self.port = None
        self.peer_port = None
        self.etcd_endpoint = None

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def kubeconfig_path(self) -> str:
        return os.path.join(self.directory, "kubeconfig")

    @property
    def config_path(self) -> str:
        return os.path.join(self.directory, "apiserver.json")

    def start(self, state: Ledger, inside: dict | None = None) -> None:
        """Certificates, etcd, the API server, the kubeconfig; each daemon's PID is owned by
        the run before it is waited for. `inside` ({"netns": path, "host": ip, "port": n}):
        a second listener in a node's namespace, for pods and nodes, as kube-apiserver
        listens on its control-plane node."""
        os.makedirs(self.directory, exist_ok=True)
        self.inside = inside
        # the certificate names the Service's address of either family (fd00:10:96::1 in
        # an IPv6-only cluster) and the listener inside the emulation
        addresses = [self.host, api_server_ip(IPV4), api_server_ip(IPV6)] + \
            ([inside["host"]] if inside else [])
        make_pki(self.pki.directory, SERVER_NAMES, addresses)
        etcd_data = os.path.join(self.directory, "etcd")
        self.etcd = start_on_free_ports(state, self._new_etcd, self._etcd_ready,
                                        lambda: shutil.rmtree(etcd_data, ignore_errors=True))
        self.apiserver = start_on_free_ports(state, self._new_apiserver, self._apiserver_ready)
        fd = os.open(self.kubeconfig_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(kubeconfig(self.cluster, self.server, self.pki))

    def _new_etcd(self) -> Daemon:
        """etcd on two ports picked free now (kept as the one to stop)."""
        client_port, self.peer_port = free_port(), free_port()
        self.etcd_endpoint = f"http://127.0.0.1:{client_port}"
        self.etcd = self._etcd_daemon(client_port, self.peer_port)
        return self.etcd

    def _new_apiserver(self) -> Daemon:
        """The API server on a port picked free now, its configuration written for it."""
        self.port = free_port()
        with open(self.config_path, "w") as f:
            json.dump({"etcd": self.etcd_endpoint, "pki": self.pki.directory,
                       "host": self.host, "port": self.port, "peer_port": self.peer_port,
                       "inside": self.inside, "run_dir": os.path.dirname(self.directory),
                       "service_cluster_ip_range": self.service_ranges}, f)
        self.apiserver = self._apiserver_daemon()
        return self.apiserver

    def _etcd_daemon(self, client_port, peer_port):
        return Daemon(f"etcd@{self.cluster}", etcd_argv(
            f"testbed-{self.cluster}", os.path.join(self.directory, "etcd"), client_port,
            peer_port), os.path.join(self.directory, "etcd.out"))

    def _apiserver_daemon(self):
        return Daemon(f"apiserver@{self.cluster}",
                      [sys.executable, "-m", "testbed.apiserver.server", self.config_path],
                      os.path.join(self.directory, "apiserver.out"))

    def record(self) -> dict:
        """What the run's state keeps of it: enough for another owner to take it over."""
        return {"server": self.server, "kubeconfig": self.kubeconfig_path,
                "directory": self.directory, "etcd": self.etcd_endpoint,
                "context": context_name(self.cluster),
                "inside": f"https://{self.inside['host']}:{self.inside['port']}"
                if self.inside else ""}

    @classmethod
    def recall(cls, cluster: str, record: dict, state: Ledger) -> "ControlPlane":
        """The control plane a dead owner started, its daemons taken over by their PIDs."""
        plane = cls(cluster, record["directory"])
        with open(plane.config_path) as f:
            config = json.load(f)
        plane.host, plane.port, plane.etcd_endpoint = config["host"], config["port"], \
            config["etcd"]
        plane.inside = config.get("inside")
        plane.etcd = plane._etcd_daemon(int(config["etcd"].rsplit(":", 1)[1]),
                                        config["peer_port"])
        plane.apiserver = plane._apiserver_daemon()
        for daemon in (plane.etcd, plane.apiserver):
            daemon.take_over(state)
        return plane

    def revive(self, state: Ledger) -> list[str]:
        """Start again whichever of etcd and the API server has died (etcd first: the API
        server needs it), on the same ports and data; the labels restarted. etcd keeps every
        object on disk, so nothing is lost."""
        restarted = []
        for daemon, ready in ((self.etcd, self._etcd_ready),
                              (self.apiserver, self._apiserver_ready)):
            if daemon is None or daemon.status("control-plane").alive:
                continue
            daemon.stop(state)  # reaps it and forgets its PID
            daemon.start(state, ready, READY_TIMEOUT_S)
            restarted.append(daemon.label)
        return restarted

    def status(self) -> dict:
        return {d.label: d.status("control-plane") for d in (self.etcd, self.apiserver)
                if d is not None}

    def _etcd_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.etcd_endpoint}/health", timeout=1) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False

    def _apiserver_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=1,
                                        context=admin_context(self.pki)) as r:
                return r.read() == b"ok"
        except (OSError, ValueError):
            return False

    def stop(self, state: Ledger) -> None:
        for daemon in (self.apiserver, self.etcd):
            if daemon is not None:
                daemon.stop(state)
        self.apiserver = self.etcd = None
