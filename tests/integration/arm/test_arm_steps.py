"""Each provision step through the Azure SDK clients against the fake ARM transport, and
the gateway install through `shared.aks.AksConnection` against the fake API server."""

from __future__ import annotations

import json
import time

import pytest

from activities import arm
from shared import aks
from shared.settings import get_settings
from tests.fakes.arm import usage
from tests.integration.arm.conftest import CONTROL_PLANE_OID, RBAC_POLL_SECONDS, RBAC_WAIT_SECONDS, SPEC, USAGES

RG = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourcegroups/rg-mcpaas-dev"
CLUSTER = f"{RG}/providers/microsoft.containerservice/managedclusters/aks-mcpaas"
ASSIGNMENTS = "/providers/microsoft.authorization/roleassignments/"
GATEWAY_KINDS = ["Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                 "PodDisruptionBudget", "NetworkPolicy"]


def call(activity, state):
    return activity._function.get_user_function()(state)


def test_resource_group_is_tagged_created_once_and_429_retry_after_is_honoured(fake_azure):
    fake_arm = fake_azure.arm
    fake_arm.throttle = 1
    started = time.monotonic()
    first = call(arm.arm_resource_group, {"spec": SPEC})
    assert time.monotonic() - started >= 1.0  # waited the Retry-After
    assert fake_arm.requests[:2] == [("GET", RG), ("GET", RG)]  # the throttled GET, retried
    assert first["created"] and first["resource_group_id"] == RG
    assert fake_arm.resources[RG]["tags"] == {"env": "dev", "system": "mcpaas", "owner": "platform-team"}
    assert call(arm.arm_resource_group, {"spec": SPEC})["created"] is False
    assert fake_arm.writes[RG] == 1


def test_vm_size_skips_restricted_and_over_quota_sizes(fake_azure):
    # D4ds_v5 is restricted in the region; D4s_v5 needs 8 vCPUs of a family with 4 free
    assert call(arm.arm_vm_size, {"spec": SPEC}) == {"vm_size": "Standard_D4as_v5"}


def test_no_fitting_vm_size_lists_every_size_tried(fake_azure):
    fake_azure.arm.usages[:] = [usage("cores", 98, 100), *USAGES[1:]]
    with pytest.raises(arm.NoVmSizeError) as error:
        call(arm.arm_vm_size, {"spec": {**SPEC, "vm_sizes": [*SPEC["vm_sizes"], "Standard_B4ms"]}})
    message = str(error.value)
    assert message.startswith("no preferred VM size fits in westeurope: ")
    for part in ("Standard_D4ds_v5 (not offered in westeurope)", "Standard_D4s_v5 (quota standardDSv5Family: "
                 "needs 8, 4 free; cores: needs 8, 2 free)", "Standard_D4as_v5 (quota cores: needs 8, 2 free)",
                 "Standard_B4ms (not offered in westeurope)"):
        assert part in message


def test_cluster_is_created_as_a_long_running_operation_with_identity_and_network_policy(fake_azure):
    fake_arm = fake_azure.arm
    result = call(arm.arm_aks_cluster, {"spec": SPEC, "vm_size": "Standard_D4as_v5"})
    path = f"{RG}/providers/microsoft.containerservice/managedclusters/aks-mcpaas"
    assert result == {"cluster_id": path, "kubelet_object_id": "kubelet-object-id",
                      "oidc_issuer_url": "https://oidc.example/aks-mcpaas/", "created": True}
    assert ("GET", "/fake-operations/1") in fake_arm.requests  # Azure-AsyncOperation polled
    props = fake_arm.resources[path]["properties"]
    assert props["oidcIssuerProfile"]["enabled"] is True
    assert props["securityProfile"] == {"workloadIdentity": {"enabled": True}}
    assert props["networkProfile"] == {"networkPlugin": "azure", "networkPolicy": "azure"}
    # Entra-only, as infra/modules/aks.bicep: no local admin kubeconfig, Azure RBAC decides
    assert props["aadProfile"] == {"managed": True, "enableAzureRBAC": True}
    assert props["disableLocalAccounts"] is True and props["enableRBAC"] is True
    [pool] = props["agentPoolProfiles"]
    assert (pool["vmSize"], pool["enableAutoScaling"], pool["minCount"], pool["maxCount"]) == (
        "Standard_D4as_v5", True, 2, 5)
    assert call(arm.arm_vm_size, {"spec": SPEC}) == {"vm_size": "Standard_D4as_v5"}  # from the cluster now
    call(arm.arm_aks_cluster, {"spec": SPEC, "vm_size": "Standard_D4as_v5"})
    assert fake_arm.writes[path] == 1




def role_puts(fake_arm, scope: str) -> list[str]:
    return [path for method, path in fake_arm.requests if method == "PUT" and path.startswith(scope + ASSIGNMENTS)]


def test_registry_is_attached_with_acr_pull_once(fake_azure):
    fake_arm = fake_azure.arm
    registry = call(arm.arm_container_registry, {"spec": SPEC})
    assert registry["created"] and registry["registry_id"].endswith("/registries/acrmcpaasdev")
    state = {"spec": SPEC, "registry_id": registry["registry_id"], "kubelet_object_id": "kubelet-object-id"}
    assert call(arm.arm_attach_registry, state) == {"created": True}
    assert call(arm.arm_attach_registry, state) == {"created": False}
    [assignment] = role_puts(fake_arm, registry["registry_id"])
    body = fake_arm.resources[assignment]["properties"]
    assert body["principalId"] == "kubelet-object-id" and body["roleDefinitionId"].endswith(arm.ACR_PULL_ROLE)


def test_the_control_plane_gets_rbac_cluster_admin_on_the_cluster_once(fake_azure):
    fake_arm = fake_azure.arm
    state = {"spec": SPEC, "cluster_id": CLUSTER}
    assert call(arm.arm_cluster_access, state) == {"principals": [CONTROL_PLANE_OID], "created": True}
    [assignment] = role_puts(fake_arm, CLUSTER)
    body = fake_arm.resources[assignment]["properties"]
    assert body["roleDefinitionId"] == ("/subscriptions/00000000-0000-0000-0000-0000000000aa/providers/"
                                        "Microsoft.Authorization/roleDefinitions/b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b")
    assert (body["principalId"], body["principalType"]) == (CONTROL_PLANE_OID, "ServicePrincipal")
    # a resumed provision reads its own assignment back (deterministic name) and sends nothing
    assert call(arm.arm_cluster_access, state) == {"principals": [CONTROL_PLANE_OID], "created": False}
    assert role_puts(fake_arm, CLUSTER) == [assignment]


def test_the_same_grant_under_another_name_counts_as_done(fake_azure):
    fake_arm = fake_azure.arm
    role = f"/subscriptions/{SPEC['subscription_id']}/providers/Microsoft.Authorization/roleDefinitions/" \
           f"{arm.AKS_RBAC_CLUSTER_ADMIN_ROLE}"
    by_hand = f"{CLUSTER}{ASSIGNMENTS}made-by-the-bicep"  # e.g. granted by infra/ or an operator
    fake_arm.resources[by_hand] = {"properties": {"roleDefinitionId": role, "principalId": CONTROL_PLANE_OID}}
    assert call(arm.arm_cluster_access, {"spec": SPEC, "cluster_id": CLUSTER})["created"] is False
    [put] = role_puts(fake_arm, CLUSTER)  # sent once, answered 409 RoleAssignmentExists
    assert put not in fake_arm.resources and not fake_arm.writes


def test_cluster_access_without_the_control_plane_identity_names_the_setting(fake_azure, monkeypatch):
    monkeypatch.delenv("MCPAAS_CONTROL_PLANE_PRINCIPALS")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="set MCPAAS_CONTROL_PLANE_PRINCIPALS"):
        call(arm.arm_cluster_access, {"spec": SPEC, "cluster_id": CLUSTER})
    assert role_puts(fake_azure.arm, CLUSTER) == []


def test_gateway_install_signs_with_the_entra_token_and_trusts_only_the_arm_ca(fake_azure):
    result = call(arm.install_gateway, {"spec": SPEC, "cluster_id": CLUSTER})
    assert result == {"applied": GATEWAY_KINDS}
    assert fake_azure.kube.get("services", "mcpaas-system", "mcpaas-gateway")["spec"]["type"] == "LoadBalancer"
    # the API server (HTTPS, CA from the ARM kubeconfig) saw only the identity's AKS token
    assert set(fake_azure.kube.bearers) == {"aks-token-1"}
    assert fake_azure.entra.scopes.count((aks.AKS_SCOPE,)) == 1
    assert [p for _, p in fake_azure.arm.requests if p.endswith("/listclusterusercredential")] == [
        CLUSTER + "/listclusterusercredential"]
    assert "token" not in json.dumps(result)  # what reaches the orchestration history


def test_gateway_install_answers_forbidden_while_the_role_propagates_then_applies(fake_azure):
    kube = fake_azure.kube
    kube.forbidden_requests = 1
    state = {"spec": SPEC, "cluster_id": CLUSTER}
    refused = call(arm.install_gateway, state)
    assert (refused["poll_seconds"], refused["wait_seconds"]) == (RBAC_POLL_SECONDS, RBAC_WAIT_SECONDS)
    assert refused["forbidden"].startswith("patch Namespace mcpaas-system: HTTP 403")
    assert kube.applies == []
    assert call(arm.install_gateway, state) == {"applied": GATEWAY_KINDS}


def test_gateway_install_fails_at_once_for_a_refused_token(fake_azure):
    fake_azure.kube.tokens = set()  # e.g. a cluster without Entra integration
    with pytest.raises(RuntimeError, match="HTTP 401"):
        call(arm.install_gateway, {"spec": SPEC, "cluster_id": CLUSTER})
    assert fake_azure.kube.applies == []
