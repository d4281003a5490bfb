"""A cluster's certificates, made as kubeadm (and so kind) makes them: a CA of the cluster's
own (`kubernetes`), the API server's serving certificate signed by it, the admin's client
certificate (CN kubernetes-admin, O system:masters: the group kube-apiserver gives every
right), and the key that signs service-account tokens. Files under one directory, keys
readable by root only."""
import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365  # kubeadm's leaf certificates last a year; the CA ten
CA_DAYS = 3650
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "system:masters"


@dataclass(frozen=True)
class Pki:
    """Paths of one cluster's certificates and keys."""
    directory: str

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    @property
    def ca_cert(self) -> str:
        return self.path("ca.crt")

    @property
    def server_cert(self) -> str:
        return self.path("apiserver.crt")

    @property
    def server_key(self) -> str:
        return self.path("apiserver.key")

    @property
    def admin_cert(self) -> str:
        return self.path("admin.crt")

    @property
    def admin_key(self) -> str:
        return self.path("admin.key")

    @property
    def service_account_key(self) -> str:
        return self.path("sa.key")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if organization:
        parts.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _write(path: str, data: bytes, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                 issuer_key: ec.EllipticCurvePrivateKey, days: int,
                 extensions: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf_extensions(usage: x509.ObjectIdentifier, sans: Sequence[x509.GeneralName] | None = None
                     ) -> list[tuple[x509.ExtensionType, bool]]:
    out = [(x509.BasicConstraints(ca=False, path_length=None), True),
           (x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False), True),
           (x509.ExtendedKeyUsage([usage]), False)]
    if sans:
        out.append((x509.SubjectAlternativeName(sans), False))
    return out


def make_pki(directory: str, dns_names: list[str], ips: list[str]) -> Pki:
    """A new CA, serving certificate (for dns_names and ips), admin certificate and
    service-account key in `directory`."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    pki = Pki(directory)
    ca_key = _key()
    ca_name = _name("kubernetes")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, CA_DAYS, [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                       crl_sign=True, encipher_only=False, decipher_only=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)])
    _write(pki.path("ca.key"), _pem_key(ca_key), private=True)
    _write(pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM))

    sans = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(a))
                                                   for a in ips]
    server_key = _key()
    server = _certificate(_name("kube-apiserver"), server_key, ca_name, ca_key, VALID_DAYS,
                          _leaf_extensions(ExtendedKeyUsageOID.SERVER_AUTH, sans))
    _write(pki.server_key, _pem_key(server_key), private=True)
    _write(pki.server_cert, server.public_bytes(serialization.Encoding.PEM))

    admin_key = _key()
    admin = _certificate(_name(ADMIN_USER, ADMIN_GROUP), admin_key, ca_name, ca_key,
                         VALID_DAYS, _leaf_extensions(ExtendedKeyUsageOID.CLIENT_AUTH))
    _write(pki.admin_key, _pem_key(admin_key), private=True)
    _write(pki.admin_cert, admin.public_bytes(serialization.Encoding.PEM))

    _write(pki.service_account_key, _pem_key(_key()), private=True)
    return pki


def user_of(peercert: dict | None) -> tuple[str, list[str]] | None:
    """(user, groups) of a verified client certificate as ssl.getpeercert() gives it: the
    common name is the user, each organization a group (kube-apiserver's x509 authenticator);
    None without one."""
    if not peercert:
        return None
    user, groups = None, []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return (user, groups) if user else None
