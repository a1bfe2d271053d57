"""The real Azure SDK clients over a fake ARM transport; the cluster is a fake Kubernetes API
behind an Entra-only AKS front (tests/fakes/aks.py): HTTPS with a CA only the ARM user
kubeconfig carries, and the control plane's own Entra token as the only credential."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from activities import arm
from shared.settings import get_settings
from tests.fakes.aks import EntraStandIn, make_ca, pem, serve_api_server, user_kubeconfig
from tests.fakes.arm import FakeArm, sku, usage
from tests.fakes.kube_api import FakeKube

SKUS = [sku("Standard_D4ds_v5", "standardDDSv5Family", 4, ["westeurope"], restricted=True),
        sku("Standard_D4s_v5", "standardDSv5Family", 4, ["westeurope"]),
        sku("Standard_D4as_v5", "standardDASv5Family", 4, ["westeurope"]),
        sku("Standard_B4ms", "standardBSFamily", 4, ["northeurope"])]
USAGES = [usage("cores", 10, 100), usage("standardDSv5Family", 0, 4), usage("standardDASv5Family", 2, 50)]

SPEC = {"subscription_id": "00000000-0000-0000-0000-0000000000aa", "location": "westeurope",
        "resource_group": "rg-mcpaas-dev", "cluster_name": "aks-mcpaas", "registry_name": "acrmcpaasdev",
        "owner": "platform-team", "vm_sizes": ["Standard_D4ds_v5", "Standard_D4s_v5", "Standard_D4as_v5"]}
# the object id of the control plane's managed identity (MCPAAS_CONTROL_PLANE_PRINCIPALS)
CONTROL_PLANE_OID = "11111111-2222-3333-4444-555555555555"
# RBAC propagation bounds of the tests: poll every 50 ms, give up after 1 s
RBAC_POLL_SECONDS, RBAC_WAIT_SECONDS = 0.05, 1.0


@dataclass
class FakeAzure:
    """What a provision test sees: ARM (`arm`), the cluster's API server (`kube`), Entra (`entra`)."""

    arm: FakeArm
    kube: FakeKube
    entra: EntraStandIn


@pytest.fixture
def fake_azure(tmp_path, monkeypatch):
    """A FakeArm wired into `activities.arm.connect`; cluster credentials lead to a fake cluster."""
    api_server = serve_api_server(tmp_path, ca := make_ca())
    # each install connects anew (a new AksConnection), so each asks Entra for a new token
    api_server.kube.tokens = {f"aks-token-{n}" for n in range(1, 100)}
    fake = FakeArm(SKUS, USAGES, kubeconfig=user_kubeconfig(api_server.url, pem(ca[1])))
    credential = EntraStandIn()
    # adapter selection is the one seam: production passes DefaultAzureCredential, no transport
    monkeypatch.setattr(arm, "connect", lambda subscription: arm.ArmClients.create(
        subscription, credential, transport=fake))
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCPAAS_CONTROL_PLANE_PRINCIPALS", CONTROL_PLANE_OID)
    monkeypatch.setenv("MCPAAS_RBAC_POLL_SECONDS", str(RBAC_POLL_SECONDS))
    monkeypatch.setenv("MCPAAS_RBAC_WAIT_SECONDS", str(RBAC_WAIT_SECONDS))
    get_settings.cache_clear()
    try:
        yield FakeAzure(fake, api_server.kube, credential)
    finally:
        api_server.stop()
        get_settings.cache_clear()
