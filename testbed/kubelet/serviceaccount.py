"""A pod's service-account volume, as the kubelet projects it: `token`, `ca.crt` and
`namespace` at /var/run/secrets/kubernetes.io/serviceaccount in every container (and in
`kubectl exec`/`testbed exec` there), so that a pod's own client reaches
https://kubernetes.default as a pod on any cluster does:

    curl --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \\
         -H "Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)" \\
         https://kubernetes.default/api

The files are written in the pod's directory of the run; the pod's commands run in a mount
namespace of their own (`ip netns exec` makes one), where that directory is bind-mounted on
the path, so nothing of one pod shows in another or on the machine. The token is bound to the
pod and its node and, as kube-apiserver extends the tokens the kubelet asks for, valid for a
year with a `warnafter` an hour on.
"""
import os
import shutil

from testbed.auth import tokens
from testbed.auth.pki import Pki
from testbed.model.state import RUN_ROOT

MOUNT_PATH = "/run/secrets/kubernetes.io/serviceaccount"  # /var/run is /run
EXTENDED_EXPIRY_S = 365 * 24 * 3600


class TokenIssuer:
    """Writes a pod's service-account files with the cluster's service-account key (the key
    kube-apiserver signs TokenRequests with)."""

    def __init__(self, pki: Pki):
        self.pki = pki
        self.key = tokens.load_key(pki.service_account_key)

    def project(self, directory: str, namespace: str, pod: str, node: str,
                account: str = "default") -> str:
        """Write token, ca.crt and namespace under `directory`; the directory to mount."""
        target = os.path.join(directory, "serviceaccount")
        os.makedirs(target, exist_ok=True)
        token, _expires = tokens.issue(
            self.key, namespace, account, "", EXTENDED_EXPIRY_S,
            bound={"pod": {"name": pod, "uid": ""}, "node": {"name": node, "uid": ""}},
            warn_after_s=tokens.POD_TOKEN_EXPIRY_S)
        for name, text in (("token", token), ("namespace", namespace)):
            with open(os.path.join(target, name), "w") as f:
                f.write(text)
        shutil.copyfile(self.pki.ca_cert, os.path.join(target, "ca.crt"))
        return target


def release_mount_path(leaving: str = "") -> None:
    """Remove the empty path made for the mounts once no run but `leaving` (a run directory)
    is left to need it."""
    try:
        others = [n for n in os.listdir(RUN_ROOT) if os.path.join(RUN_ROOT, n) != leaving]
    except FileNotFoundError:
        others = []
    if others:
        return
    for path in (MOUNT_PATH, os.path.dirname(MOUNT_PATH), os.path.dirname(
            os.path.dirname(MOUNT_PATH))):
        try:
            os.rmdir(path)  # only while empty: a mount lives in a pod's namespace only
        except OSError:
            return


def mounted(source: str, argv: list[str]) -> list[str]:
    """argv run with `source` bind-mounted on the service-account path, in the mount namespace
    `ip netns exec` gives it (the path is made on the machine once, empty, if missing)."""
    os.makedirs(MOUNT_PATH, exist_ok=True)
    return ["sh", "-c", 'mount --bind "$0" "$1" && shift && exec "$@"', source, MOUNT_PATH,
            *argv]
