"""The Azure Kubernetes adapter (shared/aks.py): `MCPAAS_AKS_CLUSTER_ID`, no kubeconfig.

Real clients at both HTTP boundaries: the real `azure-mgmt-containerservice` client over
the fake ARM transport (tests/fakes/arm.py) returns the cluster user kubeconfig as AKS
does for an Entra-only cluster (kubelogin exec user, no credential), and the real
`kubernetes` client talks HTTPS to the fake API server, whose certificate chains to a CA
that only that kubeconfig carries (tests/fakes/aks.py). A token credential stands in for Entra ID (the
`TokenCredential` boundary DefaultAzureCredential implements), handing out distinct
tokens per scope so each request's bearer can be checked.
"""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError

from activities import kubernetes as activities
from shared import aks, kubernetes
from shared.models import ServerSpec
from shared.settings import get_settings
from shared.store import get_store
from tests.fakes.aks import EntraStandIn, make_ca, pem, serve_api_server, user_kubeconfig
from tests.fakes.arm import FakeArm

CLUSTER_ID = ("/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-mcpaas/providers/"
              "Microsoft.ContainerService/managedClusters/aks-mcpaas")


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


def test_a_cluster_id_with_anything_after_it_is_refused():
    # `$` alone would admit a trailing newline; the id must be the whole string
    for bad in (CLUSTER_ID + "\n", CLUSTER_ID + "/agentPools/system", " " + CLUSTER_ID):
        with pytest.raises(ValueError, match="not an AKS cluster id"):
            aks.AksConnection(bad, EntraStandIn())
    assert aks.AksConnection(CLUSTER_ID.lower(), EntraStandIn()).name == "aks-mcpaas"
