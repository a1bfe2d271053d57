"""The real Azure SDK clients over a fake ARM transport; the cluster is a fake Kubernetes API."""

from __future__ import annotations

import pytest

from activities import arm
from shared.settings import get_settings
from tests.fakes.arm import FakeArm, FakeCredential, sku, usage
from tests.fakes.kube_api import start_fake_kube

SKUS = [sku("Standard_D4ds_v5", "standardDDSv5Family", 4, ["westeurope"], restricted=True),
        sku("Standard_D4s_v5", "standardDSv5Family", 4, ["westeurope"]),
        sku("Standard_D4as_v5", "standardDASv5Family", 4, ["westeurope"]),
        sku("Standard_B4ms", "standardBSFamily", 4, ["northeurope"])]
USAGES = [usage("cores", 10, 100), usage("standardDSv5Family", 0, 4), usage("standardDASv5Family", 2, 50)]

SPEC = {"subscription_id": "00000000-0000-0000-0000-0000000000aa", "location": "westeurope",
        "resource_group": "rg-mcpaas-dev", "cluster_name": "aks-mcpaas", "registry_name": "acrmcpaasdev",
        "owner": "platform-team", "vm_sizes": ["Standard_D4ds_v5", "Standard_D4s_v5", "Standard_D4as_v5"]}


@pytest.fixture
def fake_arm(tmp_path, monkeypatch):
    """A FakeArm wired into `activities.arm.connect`; cluster credentials lead to a fake cluster."""
    kube = start_fake_kube(tmp_path)
    fake = FakeArm(SKUS, USAGES, kubeconfig=kube.kubeconfig.read_text())
    fake.kube = kube.kube
    credential = FakeCredential()
    # adapter selection is the one seam: production passes DefaultAzureCredential, no transport
    monkeypatch.setattr(arm, "connect", lambda subscription: arm.ArmClients.create(
        subscription, credential, transport=fake))
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        yield fake
    finally:
        kube.stop()
        get_settings.cache_clear()
