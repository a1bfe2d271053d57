"""The Azure Kubernetes adapter (shared/aks.py): `MCPAAS_AKS_CLUSTER_ID`, no kubeconfig.

Real clients at both HTTP boundaries: the real `azure-mgmt-containerservice` client over
the fake ARM transport (tests/fakes/arm.py) returns the cluster user kubeconfig as AKS
does for an Entra-only cluster (kubelogin exec user, no credential), and the real
`kubernetes` client talks HTTPS to the fake API server, whose certificate chains to a CA
that only that kubeconfig carries. A token credential stands in for Entra ID (the
`TokenCredential` boundary DefaultAzureCredential implements), handing out distinct
tokens per scope so each request's bearer can be checked.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from activities import kubernetes as activities
from shared import aks, kubernetes
from shared.models import ServerSpec
from shared.settings import get_settings
from shared.store import get_store
from tests.fakes.arm import FakeArm
from tests.fakes.kube_api import RunningFakeKube, start_fake_kube

CLUSTER_ID = ("/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-mcpaas/providers/"
              "Microsoft.ContainerService/managedClusters/aks-mcpaas")
ARM_SCOPE = "https://management.azure.com/.default"


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
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _certificate("fake AKS cluster CA", key, None, key, ca=True)


def pem(cert: x509.Certificate) -> bytes:
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
    """A TokenCredential: ARM gets `fake-arm-token`; the AKS scope gets `aks-token-1`, `-2`, ...
    each valid for `lifetime` seconds. `scopes` records every request."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.lifetime, self.issued = lifetime, 0
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if scopes == (ARM_SCOPE,):
            return AccessToken("fake-arm-token", int(time.time()) + 3600)
        assert scopes == (aks.AKS_SCOPE,), scopes
        self.issued += 1
        return AccessToken(f"aks-token-{self.issued}", int(time.time() + self.lifetime))


@pytest.fixture
def azure_cluster(tmp_path, monkeypatch):
    """Settings with only MCPAAS_AKS_CLUSTER_ID; ARM and the API server faked at HTTP.

    Yields a function `(kubeconfig text, credential) -> (RunningFakeKube, FakeArm)` that
    wires a connection; the API server's CA is in the kubeconfig unless the test replaces it.
    """
    ca = make_ca()
    api_server = serve_api_server(tmp_path, ca)
    api_server.kube.tokens = {f"aks-token-{n}" for n in range(1, 5)}
    monkeypatch.delenv("MCPAAS_KUBECONFIG", raising=False)
    monkeypatch.setenv("MCPAAS_AKS_CLUSTER_ID", CLUSTER_ID)
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    get_store.cache_clear()

    def wire(credential: EntraStandIn, kubeconfig: str | None = None) -> FakeArm:
        arm = FakeArm([], [], kubeconfig=kubeconfig or user_kubeconfig(api_server.url, pem(ca[1])))
        # adapter selection is the seam: production builds the process's one connection with
        # DefaultAzureCredential and no transport (`aks.connection`)
        connection = aks.AksConnection(CLUSTER_ID, credential, transport=arm)
        monkeypatch.setattr(aks, "connection", lambda cluster_id: connection if cluster_id == CLUSTER_ID else None)
        return arm

    try:
        yield api_server, wire
    finally:
        api_server.stop()
        get_settings.cache_clear()
        get_store.cache_clear()


def container(name: str = "weather") -> ServerSpec:
    return ServerSpec.model_validate({"name": name, "kind": "container",
                                      "container": {"image": "ghcr.io/acme/weather:1.0", "port": 8080}})


def test_the_aks_adapter_is_selected_and_signs_every_request_with_the_entra_token(azure_cluster):
    api_server, wire = azure_cluster
    credential = EntraStandIn()
    arm = wire(credential)
    assert get_settings().kubernetes_target and get_settings().kubeconfig is None
    # a namespace-scoped role: the cluster-scoped Namespace is refused, the installer made it
    api_server.kube.forbidden.add("namespaces")

    assert activities.apply_spec(container()) == 1
    kinds = [kind for kind, _, manager in api_server.kube.applies if manager == "mcpaas"]
    assert kinds == ["ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "NetworkPolicy"]
    assert kubernetes.observe("weather") is not None  # a second client, same connection
    # every request carried the one Entra token; the API server (HTTPS) was trusted through
    # the CA of the ARM kubeconfig, and its address came from there too
    assert api_server.kube.bearers and set(api_server.kube.bearers) == {"aks-token-1"}
    assert credential.scopes.count((aks.AKS_SCOPE,)) == 1
    assert api_server.url.startswith("https://")
    reads = [path for method, path in arm.requests if path.endswith("/listclusterusercredential")]
    assert reads == [CLUSTER_ID.lower() + "/listclusterusercredential"]  # once per process


def test_the_token_is_renewed_before_it_expires(azure_cluster):
    api_server, wire = azure_cluster
    # valid for just over the refresh margin: good now, due for renewal a second later
    credential = EntraStandIn(lifetime=aks.REFRESH_MARGIN_SECONDS + 1)
    wire(credential)
    with kubernetes.api_client() as api:
        activities.ensure_namespace(api, "mcp-servers")
        time.sleep(1.2)
        # the same ApiClient: its refresh hook renews the bearer between two requests
        activities.ensure_namespace(api, "mcp-servers")
    assert api_server.kube.bearers == ["aks-token-1", "aks-token-2"]
    assert credential.scopes.count((aks.AKS_SCOPE,)) == 2


def test_an_api_server_certificate_from_another_ca_is_refused(azure_cluster):
    api_server, wire = azure_cluster
    _, stranger = make_ca()
    wire(EntraStandIn(), user_kubeconfig(api_server.url, pem(stranger)))
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        activities.apply_spec(container())
    assert api_server.kube.bearers == []  # no token left the process


def test_a_kubeconfig_without_a_ca_is_refused_before_any_request(azure_cluster):
    api_server, wire = azure_cluster
    wire(EntraStandIn(), user_kubeconfig(api_server.url, None))
    with pytest.raises(ValueError, match="no CA"):
        kubernetes.server_events("weather")
    assert api_server.kube.bearers == []


def test_without_the_cluster_user_role_arm_refuses_and_nothing_is_applied(azure_cluster):
    api_server, wire = azure_cluster
    arm = wire(EntraStandIn())
    arm.broken.add(("POST", "listclusterusercredential"))
    with pytest.raises(HttpResponseError, match="InjectedFailure"):
        activities.apply_spec(container())
    assert api_server.kube.applies == [] and api_server.kube.bearers == []


def test_no_target_names_both_settings(monkeypatch, tmp_path):
    monkeypatch.delenv("MCPAAS_KUBECONFIG", raising=False)
    monkeypatch.delenv("MCPAAS_AKS_CLUSTER_ID", raising=False)
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert not get_settings().kubernetes_target
        with pytest.raises(RuntimeError, match="MCPAAS_KUBECONFIG or MCPAAS_AKS_CLUSTER_ID"):
            kubernetes.server_events("weather")
    finally:
        get_settings.cache_clear()


def test_a_malformed_cluster_id_is_refused_by_settings(monkeypatch):
    monkeypatch.setenv("MCPAAS_AKS_CLUSTER_ID", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/x")
    with pytest.raises(ValueError, match="aks_cluster_id"):
        type(get_settings())()
