"""Each provision step through the Azure SDK clients against the fake ARM transport."""

from __future__ import annotations

import time

import pytest

from activities import arm
from tests.integration.arm.conftest import SPEC, USAGES
from tests.fakes.arm import usage

RG = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourcegroups/rg-mcpaas-dev"


def call(activity, state):
    return activity._function.get_user_function()(state)


def test_resource_group_is_tagged_created_once_and_429_retry_after_is_honoured(fake_arm):
    fake_arm.throttle = 1
    started = time.monotonic()
    first = call(arm.arm_resource_group, {"spec": SPEC})
    assert time.monotonic() - started >= 1.0  # waited the Retry-After
    assert fake_arm.requests[:2] == [("GET", RG), ("GET", RG)]  # the throttled GET, retried
    assert first["created"] and first["resource_group_id"] == RG
    assert fake_arm.resources[RG]["tags"] == {"env": "dev", "system": "mcpaas", "owner": "platform-team"}
    assert call(arm.arm_resource_group, {"spec": SPEC})["created"] is False
    assert fake_arm.writes[RG] == 1


def test_vm_size_skips_restricted_and_over_quota_sizes(fake_arm):
    # D4ds_v5 is restricted in the region; D4s_v5 needs 8 vCPUs of a family with 4 free
    assert call(arm.arm_vm_size, {"spec": SPEC}) == {"vm_size": "Standard_D4as_v5"}


def test_no_fitting_vm_size_lists_every_size_tried(fake_arm):
    fake_arm.usages[:] = [usage("cores", 98, 100), *USAGES[1:]]
    with pytest.raises(arm.NoVmSizeError) as error:
        call(arm.arm_vm_size, {"spec": {**SPEC, "vm_sizes": [*SPEC["vm_sizes"], "Standard_B4ms"]}})
    message = str(error.value)
    assert message.startswith("no preferred VM size fits in westeurope: ")
    for part in ("Standard_D4ds_v5 (not offered in westeurope)", "Standard_D4s_v5 (quota standardDSv5Family: "
                 "needs 8, 4 free; cores: needs 8, 2 free)", "Standard_D4as_v5 (quota cores: needs 8, 2 free)",
                 "Standard_B4ms (not offered in westeurope)"):
        assert part in message


def test_cluster_is_created_as_a_long_running_operation_with_identity_and_network_policy(fake_arm):
    result = call(arm.arm_aks_cluster, {"spec": SPEC, "vm_size": "Standard_D4as_v5"})
    path = f"{RG}/providers/microsoft.containerservice/managedclusters/aks-mcpaas"
    assert result == {"cluster_id": path, "kubelet_object_id": "kubelet-object-id",
                      "oidc_issuer_url": "https://oidc.example/aks-mcpaas/", "created": True}
    assert ("GET", "/fake-operations/1") in fake_arm.requests  # Azure-AsyncOperation polled
    props = fake_arm.resources[path]["properties"]
    assert props["oidcIssuerProfile"]["enabled"] is True
    assert props["securityProfile"] == {"workloadIdentity": {"enabled": True}}
    assert props["networkProfile"] == {"networkPlugin": "azure", "networkPolicy": "azure"}
    [pool] = props["agentPoolProfiles"]
    assert (pool["vmSize"], pool["enableAutoScaling"], pool["minCount"], pool["maxCount"]) == (
        "Standard_D4as_v5", True, 2, 5)
    assert call(arm.arm_vm_size, {"spec": SPEC}) == {"vm_size": "Standard_D4as_v5"}  # from the cluster now
    call(arm.arm_aks_cluster, {"spec": SPEC, "vm_size": "Standard_D4as_v5"})
    assert fake_arm.writes[path] == 1


def test_registry_attach_and_gateway_install(fake_arm):
    registry = call(arm.arm_container_registry, {"spec": SPEC})
    assert registry["created"] and registry["registry_id"].endswith("/registries/acrmcpaasdev")
    state = {"spec": SPEC, "registry_id": registry["registry_id"], "kubelet_object_id": "kubelet-object-id"}
    assert call(arm.arm_attach_registry, state) == {"created": True}
    assert call(arm.arm_attach_registry, state) == {"created": False}
    [assignment] = [p for p in fake_arm.writes if "/roleassignments/" in p]
    body = fake_arm.resources[assignment]["properties"]
    assert body["principalId"] == "kubelet-object-id" and body["roleDefinitionId"].endswith(arm.ACR_PULL_ROLE)

    applied = call(arm.install_gateway, {"spec": SPEC})["applied"]
    assert applied == ["Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                       "PodDisruptionBudget", "NetworkPolicy"]
    service = fake_arm.kube.get("services", "mcpaas-system", "mcpaas-gateway")
    assert service["spec"]["type"] == "LoadBalancer"
