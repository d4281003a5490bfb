"""A pod's service-account volume: the files the kubelet projects, and the command that
mounts them where a pod's client looks."""
import base64
import json
import os

from testbed.auth import tokens
from testbed.auth.pki import make_pki
from testbed.kubelet import serviceaccount


def test_the_projected_files_and_their_token(tmp_path):
    pki = make_pki(str(tmp_path / "pki"), ["kubernetes"], ["127.0.0.1"])
    issuer = serviceaccount.TokenIssuer(pki)
    where = issuer.project(str(tmp_path / "pod"), "shop", "web-1", "node2")
    assert sorted(os.listdir(where)) == ["ca.crt", "namespace", "token"]
    assert open(os.path.join(where, "namespace")).read() == "shop"
    assert open(os.path.join(where, "ca.crt")).read() == open(pki.ca_cert).read()
    token = open(os.path.join(where, "token")).read()
    body = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    # bound to the pod and node; valid a year, with a warning after the kubelet's hour
    assert claims["kubernetes.io"]["pod"]["name"] == "web-1"
    assert claims["kubernetes.io"]["node"]["name"] == "node2"
    assert claims["exp"] - claims["iat"] == serviceaccount.EXTENDED_EXPIRY_S
    assert claims["kubernetes.io"]["warnafter"] - claims["iat"] == 3607
    assert tokens.authenticate(issuer.key, token)[0] == "system:serviceaccount:shop:default"


def test_the_mount_wraps_the_command_and_keeps_its_words(monkeypatch, tmp_path):
    monkeypatch.setattr(serviceaccount, "MOUNT_PATH", str(tmp_path / "sa"))
    argv = serviceaccount.mounted("/run/testbed/c/pods/shop/web/serviceaccount",
                                  ["sh", "-c", 'echo "$0"', "a b"])
    assert argv[:3] == ["sh", "-c", 'mount --bind "$0" "$1" && shift && exec "$@"']
    assert argv[3:] == ["/run/testbed/c/pods/shop/web/serviceaccount", str(tmp_path / "sa"),
                        "sh", "-c", 'echo "$0"', "a b"]
    assert os.path.isdir(tmp_path / "sa")  # the mount point, made empty on the machine
