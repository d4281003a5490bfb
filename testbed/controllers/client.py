"""A small synchronous client of the cluster's API server, as the admin (the controllers run
in the cluster's owner, which holds the admin's certificate)."""
import http.client
import json
import ssl
import urllib.parse
from collections.abc import Callable, Collection
from typing import Any

from testbed.apiserver.controlplane import ControlPlane, admin_context
from testbed.errors import TestbedError
from testbed.host.parallel import for_each

TIMEOUT_S = 5.0


class ApiClient:
    """One kept-alive HTTPS connection (a TLS handshake per request would cost more than most
    requests), opened again when the server closed it or was restarted."""

    def __init__(self, server: str, context: ssl.SSLContext):
        self.server = server
        self.context = context
        parsed = urllib.parse.urlsplit(server)
        self.host, self.port = parsed.hostname, parsed.port
        self.connection = None

    def _connect(self) -> http.client.HTTPSConnection:
        if self.connection is None:
            self.connection = http.client.HTTPSConnection(self.host, self.port,
                                                          context=self.context,
                                                          timeout=TIMEOUT_S)
        return self.connection

    def clone(self) -> "ApiClient":
        """Another client of the same server as the same user, on a connection of its own."""
        return ApiClient(self.server, self.context)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(self, method: str, path: str, body: object = None,
                content_type: str = "application/json") -> tuple[int, dict]:
        """(status code, JSON body); a server that cannot be reached is a TestbedError."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        for attempt in (1, 2):  # once more on a connection the server had closed
            try:
                connection = self._connect()
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt == 2:
                    raise TestbedError(f"API server {self.server}: {e}") from None
        try:
            return response.status, json.loads(raw or b"{}")
        except ValueError:
            return response.status, {}

    def get(self, path: str) -> dict | None:
        code, doc = self.request("GET", path)
        if code == 404:
            return None
        if code != 200:
            raise TestbedError(f"GET {path}: {code} {doc.get('message', '')}")
        return doc

    def write(self, method: str, path: str, body: object,
              content_type: str = "application/json",
              ok: Collection[int] = (200, 201)) -> dict:
        code, doc = self.request(method, path, body, content_type)
        if code not in ok:
            raise TestbedError(f"{method} {path}: {code} {doc.get('message', '')}")
        return doc

    def mirror(self, path: str, body: dict) -> dict | None:
        """Write an object the cluster made itself into the API: the object written, or None
        when another writer was first (409) or its namespace is not in the API yet (404: the
        namespaces' controller writes it, and the next pass this object)."""
        code, doc = self.request("POST", path, body)
        if code == 201:
            return doc
        if code == 409 or (code == 404 and (doc.get("details") or {}).get("kind") ==
                           "namespaces"):
            return None
        raise TestbedError(f"POST {path}: {code} {doc.get('message', '')}")


class Writers:
    """Clients of one server side by side, each on a connection of its own, sharing a list
    of writes (a cluster's first pass writes every Node and every pod)."""

    def __init__(self, client: ApiClient, count: int = 4):
        self.clients = [client] + [client.clone() for _ in range(count - 1)]

    def each(self, jobs: list, work: Callable[[ApiClient, Any], Any]) -> list:
        """work(client, job) for every job, each client taking every count-th job in turn;
        the results in the jobs' order."""
        results = [None] * len(jobs)
        count = len(self.clients)

        def run(first):
            for i in range(first, len(jobs), count):
                results[i] = work(self.clients[first], jobs[i])
        for_each(range(min(count, len(jobs))), run)
        return results


def admin_client(record: dict) -> ApiClient:
    """A client of a running cluster's API server as its admin, from what the run's state
    keeps of the control plane (ControlPlane.record)."""
    return ApiClient(record["server"], admin_context(ControlPlane("", record["directory"]).pki))
