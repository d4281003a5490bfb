"""Service-account tokens: issued as kube-apiserver issues them, checked as it checks them."""
import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.auth import tokens


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())


def claims_of(token):
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_a_pods_token_names_its_account_pod_and_node(key):
    bound = {"pod": {"name": "web", "uid": "p-1"}, "node": {"name": "node1", "uid": "n-1"}}
    token, expires = tokens.issue(key, "shop", "default", "sa-1", tokens.POD_TOKEN_EXPIRY_S,
                                  bound=bound, now=1000)
    claims = claims_of(token)
    assert expires == claims["exp"] == 1000 + 3607 and claims["iat"] == claims["nbf"] == 1000
    assert claims["sub"] == "system:serviceaccount:shop:default"
    assert claims["iss"] == claims["aud"][0] == "https://kubernetes.default.svc.cluster.local"
    assert claims["kubernetes.io"] == {"namespace": "shop", **bound,
                                       "serviceaccount": {"name": "default", "uid": "sa-1"}}
    # what the API server checks still exists before it lets the token in
    assert tokens.bound_objects(token) == [("serviceaccounts", "shop", "default", "sa-1"),
                                           ("pods", "shop", "web", "p-1")]
    unbound, _ = tokens.issue(key, "shop", "bot", "", now=1000)
    assert tokens.bound_objects(unbound) == [("serviceaccounts", "shop", "bot", "")]
    assert tokens.authenticate(key, token, now=1001) == (
        "system:serviceaccount:shop:default",
        ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"])


def test_what_is_refused(key):
    token, expires = tokens.issue(key, "default", "default", "sa-1", now=1000)
    other = ec.generate_private_key(ec.SECP256R1())
    forged, _ = tokens.issue(other, "default", "default", "sa-1", now=1000)
    head, body, signature = token.split(".")
    assert tokens.authenticate(key, token, now=expires) is None  # expired
    assert tokens.authenticate(key, forged, now=1001) is None  # another cluster's key
    assert tokens.authenticate(key, f"{head}.{body}.{signature[::-1]}", now=1001) is None
    assert tokens.authenticate(key, f"{head}.{body}", now=1001) is None
    assert tokens.authenticate(key, "not a token", now=1001) is None
    elsewhere, _ = tokens.issue(key, "default", "default", "sa-1", audiences=["vault"],
                                now=1000)
    assert tokens.authenticate(key, elsewhere, now=1001) is None  # not for us


def test_the_key_id_is_the_hash_of_the_public_key(key):
    header = json.loads(base64.urlsafe_b64decode(tokens.issue(key, "d", "d", "u")[0]
                                                 .split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": tokens.key_id(key.public_key())}
    assert len(header["kid"]) == 43  # 32 bytes, base64url without padding
