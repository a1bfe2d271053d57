"""Activities that provision the Azure side of MCPaaS through Azure Resource Manager (FR-001).

One activity per `provision` step, each idempotent the same way: read first, create only
what is missing (so a resumed provision never creates anything twice), return what
later steps need. Clients are the Azure SDK management clients; long-running operations
go through their pollers and 429/5xx retries through azure-core's RetryPolicy, which
honours `Retry-After` (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
Inputs are `{"spec": ControlPlaneSpec JSON, ...results of earlier steps}`.

The cluster is Entra-only, as infra/modules/aks.bicep makes it (managed Entra ID, Azure
RBAC for Kubernetes authorization, local accounts disabled): the control plane reaches it
through `shared.aks.AksConnection` with its own Entra token, after `arm_cluster_access`
has granted its identity a cluster role (docs/kubernetes.md, "Provisioning with `mcpaas provision`").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import azure.durable_functions as df
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import Registry, RegistryProperties, Sku
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice import models as aks
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.models import ResourceGroup
from kubernetes import client

from activities import kubernetes
from shared import aks as aks_api
from shared import manifests
from shared.models import ControlPlaneSpec
from shared.settings import get_settings

bp = df.Blueprint()

# built-in AcrPull role: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers#acrpull
ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
# built-in "Azure Kubernetes Service RBAC Cluster Admin": the gateway install applies the
# cluster-scoped Namespace, which the namespace-level roles (Writer, Admin) do not cover
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers#azure-kubernetes-service-rbac-cluster-admin
AKS_RBAC_CLUSTER_ADMIN_ROLE = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
T = TypeVar("T")


class NoVmSizeError(ValueError):
    """No preferred VM size is offered in the region with enough vCPU quota; lists each try."""


@dataclass(frozen=True)
class ArmClients:
    """The management clients of one subscription, sharing a credential and client options
    (kept: the cluster connection of `install_gateway` is made with the same ones)."""

    resources: ResourceManagementClient
    compute: ComputeManagementClient
    aks: ContainerServiceClient
    acr: ContainerRegistryManagementClient
    authorization: AuthorizationManagementClient
    credential: TokenCredential
    options: dict[str, Any]

    @classmethod
    def create(cls, subscription_id: str, credential: TokenCredential, **options: Any) -> ArmClients:
        """Clients for `subscription_id`; `options` go to every client (e.g. `transport`)."""
        return cls(ResourceManagementClient(credential, subscription_id, **options),
                   ComputeManagementClient(credential, subscription_id, **options),
                   ContainerServiceClient(credential, subscription_id, **options),
                   ContainerRegistryManagementClient(credential, subscription_id, **options),
                   AuthorizationManagementClient(credential, subscription_id, **options),
                   credential, options)


def connect(subscription_id: str) -> ArmClients:
    """Production clients: `DefaultAzureCredential` (managed identity on Azure Functions)."""
    from azure.identity import DefaultAzureCredential  # late: only provisioning needs it

    return ArmClients.create(subscription_id, DefaultAzureCredential())


def _existing(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except ResourceNotFoundError:
        return None


def _spec(state: dict[str, Any]) -> tuple[ControlPlaneSpec, ArmClients]:
    spec = ControlPlaneSpec.model_validate(state["spec"])
    return spec, connect(spec.subscription_id)


@bp.activity_trigger(input_name="state")
def arm_resource_group(state: dict[str, Any]) -> dict[str, Any]:
    """Ensure the tagged resource group; `{"resource_group_id", "created"}`."""
    spec, arm = _spec(state)
    group = _existing(lambda: arm.resources.resource_groups.get(spec.resource_group))
    created = group is None
    if group is None:
        group = arm.resources.resource_groups.create_or_update(
            spec.resource_group, ResourceGroup(location=spec.location, tags=spec.tags))
    return {"resource_group_id": group.id, "created": created}


def choose_vm_size(preferred: list[str], location: str, skus: list[Any], usages: list[Any], nodes: int) -> str:
    """The first of `preferred` that `location` offers unrestricted and whose VM family and
    regional vCPU quota can hold `nodes` of it.

    `skus` are compute ResourceSku objects, `usages` compute Usage objects. Raises
    NoVmSizeError naming every size tried and why it did not fit.
    """
    offered = {sku.name: sku for sku in skus if sku.resource_type == "virtualMachines"
               and location in [loc.lower() for loc in sku.locations or []] and not sku.restrictions}
    free = {usage.name.value: usage.limit - usage.current_value for usage in usages}
    tried = []
    for size in preferred:
        sku = offered.get(size)
        if sku is None:
            tried.append(f"{size} (not offered in {location})")
            continue
        vcpus = int(next(c.value for c in sku.capabilities if c.name == "vCPUs")) * nodes
        short = [f"{quota}: needs {vcpus}, {free.get(quota, 0)} free"
                 for quota in (sku.family, "cores") if free.get(quota, 0) < vcpus]
        if not short:
            return size
        tried.append(f"{size} (quota {'; '.join(short)})")
    raise NoVmSizeError(f"no preferred VM size fits in {location}: {', '.join(tried)}")


@bp.activity_trigger(input_name="state")
def arm_vm_size(state: dict[str, Any]) -> dict[str, Any]:
    """The node VM size: the existing cluster's, else `choose_vm_size`; `{"vm_size"}`."""
    spec, arm = _spec(state)
    cluster = _existing(lambda: arm.aks.managed_clusters.get(spec.resource_group, spec.cluster_name))
    if cluster is not None:  # a resumed provision keeps what the cluster already runs
        return {"vm_size": cluster.agent_pool_profiles[0].vm_size}
    skus = list(arm.compute.resource_skus.list(filter=f"location eq '{spec.location}'"))
    usages = list(arm.compute.usage.list(spec.location))
    return {"vm_size": choose_vm_size(spec.vm_sizes, spec.location, skus, usages, spec.min_nodes)}


@bp.activity_trigger(input_name="state")
def arm_container_registry(state: dict[str, Any]) -> dict[str, Any]:
    """Ensure the ACR (Standard, admin user off); `{"registry_id", "created"}`."""
    spec, arm = _spec(state)
    registry = _existing(lambda: arm.acr.registries.get(spec.resource_group, spec.registry_name))
    created = registry is None
    if registry is None:
        # SDK models, not dicts: the clients send a dict body verbatim, unmapped to ARM's camelCase
        registry = arm.acr.registries.begin_create(spec.resource_group, spec.registry_name, Registry(
            location=spec.location, tags=spec.tags, sku=Sku(name="Standard"),
            properties=RegistryProperties(admin_user_enabled=False))).result()
    return {"registry_id": registry.id, "created": created}


def cluster_definition(spec: ControlPlaneSpec, vm_size: str) -> aks.ManagedCluster:
    """The ManagedCluster: Entra-only like infra/modules/aks.bicep (AKS-managed Entra ID,
    Azure RBAC for Kubernetes authorization, local accounts disabled, so no credential
    ever comes out of ARM: https://learn.microsoft.com/azure/aks/manage-local-accounts-managed-azure-ad),
    OIDC issuer and workload identity on, Azure CNI with Azure network policy, autoscaled
    system pool (https://learn.microsoft.com/azure/aks/workload-identity-deploy-cluster)."""
    pool = aks.ManagedClusterAgentPoolProfile(
        name="system", mode="System", vm_size=vm_size, os_type="Linux", count=spec.min_nodes,
        enable_auto_scaling=True, min_count=spec.min_nodes, max_count=spec.max_nodes)
    return aks.ManagedCluster(
        location=spec.location, tags=spec.tags, identity=aks.ManagedClusterIdentity(type="SystemAssigned"),
        properties=aks.ManagedClusterProperties(
            kubernetes_version=spec.kubernetes_version, dns_prefix=spec.cluster_name,
            enable_rbac=True, disable_local_accounts=True,
            aad_profile=aks.ManagedClusterAADProfile(managed=True, enable_azure_rbac=True),
            oidc_issuer_profile=aks.ManagedClusterOIDCIssuerProfile(enabled=True),
            security_profile=aks.ManagedClusterSecurityProfile(
                workload_identity=aks.ManagedClusterSecurityProfileWorkloadIdentity(enabled=True)),
            network_profile=aks.ContainerServiceNetworkProfile(network_plugin="azure", network_policy="azure"),
            agent_pool_profiles=[pool]))


@bp.activity_trigger(input_name="state")
def arm_aks_cluster(state: dict[str, Any]) -> dict[str, Any]:
    """Ensure the AKS cluster; `{"cluster_id", "kubelet_object_id", "oidc_issuer_url", "created"}`."""
    spec, arm = _spec(state)
    clusters = arm.aks.managed_clusters
    cluster = _existing(lambda: clusters.get(spec.resource_group, spec.cluster_name))
    created = cluster is None
    if cluster is None:
        cluster = clusters.begin_create_or_update(spec.resource_group, spec.cluster_name,
                                                  cluster_definition(spec, state["vm_size"])).result()
    kubelet = (cluster.identity_profile or {}).get("kubeletidentity")
    return {"cluster_id": cluster.id, "kubelet_object_id": kubelet.object_id if kubelet else None,
            "oidc_issuer_url": cluster.oidc_issuer_profile.issuer_url if cluster.oidc_issuer_profile else None,
            "created": created}


def _ensure_role(arm: ArmClients, spec: ControlPlaneSpec, scope: str, role: str, principal: str) -> bool:
    """Assign built-in `role` (a role definition GUID) to service principal `principal` at
    `scope`; True when this call created it.

    The assignment's name is uuid5(scope, principal, role), so a resumed provision finds
    its own; ARM's 409 `RoleAssignmentExists` (the same grant under another name, e.g.
    made by the Bicep or by hand) counts as done. Other ARM errors propagate.
    """
    name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}|{principal}|{role}"))
    assignments = arm.authorization.role_assignments
    if _existing(lambda: assignments.get(scope, name)) is not None:
        return False
    definition = f"/subscriptions/{spec.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    try:
        # the flattened arguments are the runtime model's (it sends them under `properties`); mypy
        # resolves the multi-API `models` module to the 2015-07-01 class, which has no such fields
        assignments.create(scope, name, RoleAssignmentCreateParameters(  # type: ignore[call-arg]
            role_definition_id=definition, principal_id=principal, principal_type="ServicePrincipal"))
    except ResourceExistsError as error:
        if error.error is None or error.error.code != "RoleAssignmentExists":
            raise
        return False
    return True


@bp.activity_trigger(input_name="state")
def arm_attach_registry(state: dict[str, Any]) -> dict[str, Any]:
    """Grant the cluster's kubelet identity AcrPull on the registry (what `az aks update
    --attach-acr` does), once (`_ensure_role`). `{"created"}`."""
    spec, arm = _spec(state)
    principal = state["kubelet_object_id"]
    if not principal:
        raise RuntimeError(f"cluster {spec.cluster_name} reports no kubelet identity to attach the registry to")
    return {"created": _ensure_role(arm, spec, state["registry_id"], ACR_PULL_ROLE, principal)}


@bp.activity_trigger(input_name="state")
def arm_cluster_access(state: dict[str, Any]) -> dict[str, Any]:
    """Grant the control plane's identity "Azure Kubernetes Service RBAC Cluster Admin" on
    the new cluster, so `install_gateway` may apply into it; once per principal (`_ensure_role`).

    The principals are `MCPAAS_CONTROL_PLANE_PRINCIPALS`, the object ids of the control
    plane's managed identity (the Bicep sets it), whose token `install_gateway` presents.
    Raises ValueError when that setting is empty. `{"principals", "created"}`.
    """
    spec, arm = _spec(state)
    principals = get_settings().control_plane_principals
    if not principals:
        raise ValueError("no control plane identity to grant cluster access to: set MCPAAS_CONTROL_PLANE_PRINCIPALS "
                         "to the object id of the control plane's managed identity")
    created = [_ensure_role(arm, spec, state["cluster_id"], AKS_RBAC_CLUSTER_ADMIN_ROLE, p) for p in principals]
    return {"principals": list(principals), "created": any(created)}


@bp.activity_trigger(input_name="state")
def install_gateway(state: dict[str, Any]) -> dict[str, Any]:
    """Apply the gateway's objects (`shared.manifests.render_gateway`) to the new cluster.

    Connects as `shared.aks.AksConnection` with the ARM clients' credential and options:
    the API server's address and CA from ARM, the identity's own Entra token per request;
    neither leaves the activity, so no credential reaches the orchestration history.
    Returns `{"applied": [kind, ...]}`, or `{"forbidden": reason, "poll_seconds",
    "wait_seconds"}` while the API server answers 403 (the role assignment of
    `arm_cluster_access` still propagating: the orchestration waits and calls again;
    server-side apply makes the repeat harmless). Other API errors raise RuntimeError.
    """
    spec, arm = _spec(state)
    connection = aks_api.AksConnection(state["cluster_id"], arm.credential, **arm.options)
    objects = manifests.render_gateway(spec.gateway_image, manifests.options_from_settings())
    try:
        with client.ApiClient(connection.configuration()) as api:
            applied = [kubernetes.apply(api, obj)["kind"] for obj in objects]
    except RuntimeError as error:
        if "HTTP 403" not in str(error):
            raise
        settings = get_settings()
        return {"forbidden": str(error), "poll_seconds": settings.rbac_poll_seconds,
                "wait_seconds": settings.rbac_wait_seconds}
    return {"applied": applied}
