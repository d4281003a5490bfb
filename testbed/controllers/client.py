"""A small synchronous client of the cluster's API server, as the admin (the controllers run
in the cluster's owner, which holds the admin's certificate)."""
import json
import ssl
import urllib.error
import urllib.request

from testbed.errors import TestbedError

TIMEOUT_S = 5.0


class ApiClient:
    def __init__(self, server: str, context: ssl.SSLContext):
        self.server = server
        self.context = context

    def request(self, method: str, path: str, body=None,
                content_type: str = "application/json") -> tuple[int, dict]:
        """(status code, JSON body); a server that cannot be reached is a TestbedError."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": content_type,
                                              "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=TIMEOUT_S) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"{}")
            except ValueError:
                return e.code, {}
        except (OSError, ValueError) as e:
            raise TestbedError(f"API server {self.server}: {e}") from None

    def get(self, path: str) -> dict | None:
        code, doc = self.request("GET", path)
        if code == 404:
            return None
        if code != 200:
            raise TestbedError(f"GET {path}: {code} {doc.get('message', '')}")
        return doc

    def write(self, method: str, path: str, body, content_type: str = "application/json",
              ok=(200, 201)) -> dict:
        code, doc = self.request(method, path, body, content_type)
        if code not in ok:
            raise TestbedError(f"{method} {path}: {code} {doc.get('message', '')}")
        return doc
