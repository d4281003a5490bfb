"""Service-account tokens as kube-apiserver issues and checks them: JSON Web Tokens signed with
the cluster's service-account key, naming the account (`system:serviceaccount:<ns>:<name>`)
and, for a pod's token, the pod and node it is bound to. The key here is ECDSA P-256, so the
tokens are ES256 (kube-apiserver signs with RS256 for an RSA key, ES256 for an EC one); the
key id is, as kube-apiserver computes it, the URL-safe base64 of the SHA-256 of the public
key's DER form.

A token authenticates as the account, in the groups `system:serviceaccounts`,
`system:serviceaccounts:<ns>` and `system:authenticated`."""
import base64
import hashlib
import json
import time
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCES = [ISSUER]  # kube-apiserver's default --api-audiences: its issuer
EXPIRY_S = 3600  # TokenRequest's default expirationSeconds
POD_TOKEN_EXPIRY_S = 3607  # what the kubelet asks for a projected token (an hour and 7 s)
MIN_EXPIRY_S = 600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(path: str) -> ec.EllipticCurvePrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):  # the cluster's sa.key is P-256
        raise ValueError(f"{path}: not an EC private key")
    return key


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def issue(key: ec.EllipticCurvePrivateKey, namespace: str, account: str, account_uid: str,
          expiry_s: int = EXPIRY_S, audiences: "list[str] | None" = None,
          bound: "dict | None" = None, warn_after_s: "int | None" = None,
          now: "float | None" = None) -> tuple[str, int]:
    """(token, expiry as epoch seconds). `bound`: {"pod": {"name", "uid"}, "node": {...}},
    what a pod's token is bound to; `warn_after_s`: for a token whose expiry was extended (as
    kube-apiserver extends the kubelet's), when a client using it is warned."""
    now = int(time.time() if now is None else now)
    bound = dict(bound or {})
    if warn_after_s is not None:
        bound["warnafter"] = now + warn_after_s
    claims = {"aud": audiences or AUDIENCES, "exp": now + expiry_s, "iat": now, "iss": ISSUER,
              "jti": str(uuid.uuid4()), "nbf": now,
              "sub": f"system:serviceaccount:{namespace}:{account}",
              "kubernetes.io": {"namespace": namespace, **bound,
                                "serviceaccount": {"name": account, "uid": account_uid}}}
    header = {"alg": "ES256", "kid": key_id(key.public_key())}
    signed = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JOSE's r || s
    return f"{signed}.{_b64(signature)}", now + expiry_s


def authenticate(key: ec.EllipticCurvePrivateKey, token: str,
                 now: "float | None" = None) -> "tuple[str, list[str]] | None":
    """(user, groups) of a valid token: signed by the key, issued by us for our audience,
    within its time; None otherwise."""
    try:
        head, body, signature = token.split(".")
        raw = _unb64(signature)
        if len(raw) != 64:
            return None
        key.public_key().verify(
            encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                 int.from_bytes(raw[32:], "big")),
            f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
    except (ValueError, InvalidSignature, UnicodeDecodeError):
        return None
    now = time.time() if now is None else now
    if header.get("alg") != "ES256" or claims.get("iss") != ISSUER or \
            not set(claims.get("aud") or []) & set(AUDIENCES) or \
            not claims.get("nbf", 0) - 60 <= now < claims.get("exp", 0):
        return None
    subject = claims.get("sub", "")
    parts = subject.split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
        return None
    return subject, ["system:serviceaccounts", f"system:serviceaccounts:{parts[2]}",
                     "system:authenticated"]


def bound_objects(token: str) -> list[tuple[str, str, str, str]]:
    """What a verified token names, each (resource, namespace, name, uid; "" where the token
    carries none): its service account, and the pod it is bound to if any."""
    claims = json.loads(_unb64(token.split(".")[1])).get("kubernetes.io") or {}
    namespace = claims.get("namespace", "")
    account, pod = claims.get("serviceaccount") or {}, claims.get("pod") or {}
    found = [("serviceaccounts", namespace, account.get("name", ""), account.get("uid", ""))]
    if pod.get("name"):
        found.append(("pods", namespace, pod["name"], pod.get("uid", "")))
    return found
