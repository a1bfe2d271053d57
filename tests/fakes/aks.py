"""An Entra-only AKS cluster at its two HTTP boundaries, for `shared.aks.AksConnection`.

What `listClusterUserCredential` returns for such a cluster (`user_kubeconfig`: the API
server's address and CA, a kubelogin exec user, no credential), the fake Kubernetes API
(tests/fakes/kube_api.py) served on HTTPS with a certificate that chains to a CA only
that kubeconfig carries (`make_ca`, `serve_api_server`), and a token credential standing
in for Entra ID (`EntraStandIn`, the `TokenCredential` boundary `DefaultAzureCredential`
implements). Used by tests/integration/kubernetes/test_aks_connection.py and the
provision steps (tests/integration/arm/).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import time
from pathlib import Path
from typing import Any

import yaml
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared import aks
from tests.fakes.kube_api import RunningFakeKube, start_fake_kube

ARM_SCOPE = "https://management.azure.com/.default"
ARM_TOKEN = "fake-arm-token"  # what tests.fakes.arm.FakeArm accepts


def _certificate(subject: str, key: Any, issuer: x509.Name | None, issuer_key: Any, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_ca() -> tuple[Any, x509.Certificate]:
    """A new cluster CA: (private key, self-signed certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _certificate("fake AKS cluster CA", key, None, key, ca=True)


def pem(cert: x509.Certificate) -> bytes:
    """`cert` as PEM bytes."""
    return cert.public_bytes(serialization.Encoding.PEM)


def serve_api_server(directory: Path, ca: tuple[Any, x509.Certificate]) -> RunningFakeKube:
    """The fake API server on HTTPS with a 127.0.0.1 certificate issued by `ca`."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("apiserver", key, ca_cert.subject, ca_key, ca=False)
    certfile, keyfile = directory / "apiserver.pem", directory / "apiserver.key"
    certfile.write_bytes(pem(cert))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return start_fake_kube(directory, tls=(certfile, keyfile))


def user_kubeconfig(server: str, ca_pem: bytes | None) -> str:
    """What listClusterUserCredential returns for an Entra-only cluster: an exec (kubelogin) user."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "aks-mcpaas",
        "clusters": [{"name": "aks-mcpaas", "cluster": cluster}],
        "contexts": [{"name": "aks-mcpaas", "context": {"cluster": "aks-mcpaas", "user": "clusterUser"}}],
        "users": [{"name": "clusterUser", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
            "args": ["get-token", "--login", "devicecode", "--server-id", aks.AKS_SCOPE.split("/")[0]]}}}]})


class EntraStandIn:
    """A TokenCredential: ARM gets `ARM_TOKEN`; the AKS scope gets `aks-token-1`, `-2`, ...
    each valid for `lifetime` seconds. `scopes` records every request."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.lifetime, self.issued = lifetime, 0
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if scopes == (ARM_SCOPE,):
            return AccessToken(ARM_TOKEN, int(time.time()) + 3600)
        assert scopes == (aks.AKS_SCOPE,), scopes
        self.issued += 1
        return AccessToken(f"aks-token-{self.issued}", int(time.time() + self.lifetime))
