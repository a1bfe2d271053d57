"""infra/ declares every resource MCPaaS needs, identity-based and tagged (issue 6)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from shared.store.port import CONTAINERS
from tests.infra.bicep import Resource, read_resources
from tests.tooling import REPO

INFRA = REPO / "infra"
RESOURCES = read_resources(INFRA)


def one(type_: str) -> Resource:
    found = [r for r in RESOURCES if r.type == type_ and not r.existing]
    assert len(found) == 1, f"expected one {type_}, found {[r.symbol for r in found]}"
    return found[0]


def role_assignments_in(file: str) -> list[Resource]:
    return [r for r in RESOURCES if r.file == file and r.type == "Microsoft.Authorization/roleAssignments"]


def test_every_new_resource_with_a_location_is_tagged_env_system_owner() -> None:
    main = (INFRA / "main.bicep").read_text()
    tags = re.search(r"var tags = \{(.*?)\n\}", main, re.DOTALL)
    assert tags and {k for k in re.findall(r"^\s*(\w+):", tags.group(1), re.MULTILINE)} == {"env", "system", "owner"}
    top = [r for r in RESOURCES if r.top_level]
    assert len(top) >= 11
    untagged = [r.symbol for r in top if not (r.value("tags") or "").startswith(("tags", "union(tags"))]
    assert not untagged


def test_control_plane_and_gateway_identities_are_separate() -> None:
    one("Microsoft.ManagedIdentity/userAssignedIdentities")  # one module, instantiated twice
    main = (INFRA / "main.bicep").read_text()
    assert len(re.findall(r"^module \w+ 'modules/identity\.bicep'", main, re.MULTILINE)) == 2
    # only the gateway identity is federated with the gateway's service account
    federation = one("Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials")
    assert federation.value("parent") == "gatewayIdentity"
    assert "gatewayIdentityName: gatewayIdentity.outputs.name" in _module_block("aks")
    for type_ in ("Microsoft.Web/sites", "Microsoft.ApiManagement/service"):
        identity = one(type_).block("identity")
        assert "type: 'UserAssigned'" in identity and "${identityId}" in identity
    site = one("Microsoft.Web/sites")
    assert site.value("keyVaultReferenceIdentity") == "identityId"


def test_function_app_is_flex_consumption_python_311_with_identity_connections() -> None:
    plan = one("Microsoft.Web/serverfarms")
    sku = plan.block("sku")
    assert "tier: 'FlexConsumption'" in sku and "name: 'FC1'" in sku
    site = one("Microsoft.Web/sites")
    runtime = site.block("runtime")
    assert "name: 'python'" in runtime and "version: '3.11'" in runtime
    settings = dict(re.findall(r"name: '([^']+)'\s*\n\s*value: (.+)", site.block("siteConfig")))
    for connection in ("AzureWebJobsStorage", "ServiceBusConnection"):
        assert settings[f"{connection}__credential"] == "'managedidentity'"
        assert settings[f"{connection}__clientId"] == "identityClientId"
    assert "UserAssignedIdentity" in site.block("deployment")


def test_secrets_only_as_key_vault_references_and_no_keys_anywhere() -> None:
    text = "\n".join(p.read_text() for p in INFRA.rglob("*.bicep"))
    for forbidden in ("listKeys(", "listConnectionStrings(", "AccountKey=", "SharedAccessKey", "@secure()"):
        assert forbidden not in text, forbidden
    site = one("Microsoft.Web/sites")
    settings = dict(re.findall(r"name: '([^']+)'\s*\n\s*value: (.+)", site.block("siteConfig")))
    # no app setting carries a secret today; one that does must be a Key Vault reference
    secret_like = {k: v for k, v in settings.items() if re.search(r"TOKEN|SECRET|PASSWORD|KEY$", k)}
    assert all(v.startswith("'@Microsoft.KeyVault(") for v in secret_like.values()), secret_like


@pytest.mark.parametrize(("type_", "setting"), [
    ("Microsoft.Storage/storageAccounts", "allowSharedKeyAccess: false"),
    ("Microsoft.DocumentDB/databaseAccounts", "disableLocalAuth: true"),
    ("Microsoft.ServiceBus/namespaces", "disableLocalAuth: true"),
    ("Microsoft.KeyVault/vaults", "enableRbacAuthorization: true"),
    ("Microsoft.ContainerRegistry/registries", "adminUserEnabled: false"),
    ("Microsoft.Insights/components", "DisableLocalAuth: true"),
    ("Microsoft.ContainerService/managedClusters", "disableLocalAccounts: true"),
])
def test_local_auth_is_disabled(type_: str, setting: str) -> None:
    assert setting in one(type_).body


@pytest.mark.parametrize(("file", "roles"), [
    # blob owner, queue + table contributor; Blob Data Reader (gateway, artifacts container)
    ("storage.bicep", {"b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
                       "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"}),
    ("servicebus.bicep", {"4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"}),  # Data Receiver
    # Secrets Officer: the control plane writes server secrets; Secrets User: the gateway reads
    ("keyvault.bicep", {"b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "4633458b-17de-408a-b874-0445c86b69e6"}),
    ("monitoring.bicep", {"3913510d-42f4-4e42-8a64-420c390055eb"}),  # Metrics Publisher
    ("apim.bicep", {"312a565d-c81f-4fd8-895a-4e21e48d571c"}),  # APIM Service Contributor
    # AcrPull (kubelet), Cluster User + RBAC Writer (control plane), RBAC Cluster Admin (azd's deployer, if given)
    ("aks.bicep", {"7f951dda-4ed3-4680-a7ca-43fe172d538d", "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
                   "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb", "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"}),
])
def test_least_privilege_role_assignments_scoped_to_their_resource(file: str, roles: set[str]) -> None:
    text = (INFRA / "modules" / file).read_text()
    declared = set(re.findall(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'", text))
    assert declared == roles
    assignments = role_assignments_in(file)
    assert assignments and all(a.value("scope") not in (None, "resourceGroup()", "subscription()")
                               for a in assignments)
    forbidden = {"8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c"}  # Owner, Contributor
    assert not declared & forbidden


def test_cosmos_is_serverless_with_every_store_container_and_data_plane_rbac() -> None:
    account = one("Microsoft.DocumentDB/databaseAccounts")
    assert "name: 'EnableServerless'" in account.body
    main = (INFRA / "main.bicep").read_text()
    declared = dict(re.findall(r"name: '(\w+)'\s*\n\s*partitionKey: '(\w+)'", main))
    assert declared == CONTAINERS
    assert one("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers").loop
    grant = one("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments")
    assert "00000000-0000-0000-0000-000000000002" in (INFRA / "modules" / "cosmos.bicep").read_text()
    assert grant.loop and grant.value("principalId") == "principal"
    assert "gatewayPrincipalId: gatewayIdentity.outputs.principalId" in _module_block("cosmos")


def test_service_bus_deploy_requests_queue_dead_letters_after_ten_deliveries() -> None:
    queue = one("Microsoft.ServiceBus/namespaces/queues")
    assert queue.value("name") == "'deploy-requests'"
    assert queue.value("maxDeliveryCount") == "10"
    assert queue.value("deadLetteringOnMessageExpiration") == "true"


def test_aks_has_oidc_issuer_and_workload_identity_federated_to_the_gateway() -> None:
    cluster = one("Microsoft.ContainerService/managedClusters")
    assert "enabled: true" in cluster.block("oidcIssuerProfile")
    assert "enabled: true" in cluster.block("workloadIdentity")
    federation = one("Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials")
    assert "oidcIssuerProfile.issuerURL" in federation.value("issuer")
    assert one("Microsoft.ApiManagement/service")
    assert one("Microsoft.OperationalInsights/workspaces")
    assert "WorkspaceResourceId: workspace.id" in one("Microsoft.Insights/components").body


def test_azd_project_and_local_settings_example() -> None:
    project = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert project["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert project["services"]["api"]["host"] == "function"
    assert "'azd-service-name': 'api'" in one("Microsoft.Web/sites").body
    local = json.loads((REPO / "local.settings.example.json").read_text())
    assert local["Values"]["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert local["Values"]["ServiceBusConnection__fullyQualifiedNamespace"]
    assert not any("AccountKey" in str(v) or "SharedAccessKey" in str(v) for v in local["Values"].values())


def test_cluster_admin_goes_only_to_the_deployer_and_only_when_given() -> None:
    admin = [a for a in role_assignments_in("aks.bicep") if "rbacClusterAdmin" in a.body]
    assert len(admin) == 1 and admin[0].conditional
    assert admin[0].value("principalId") == "deployerPrincipalId"
    assert "deployerPrincipalId" in (INFRA / "main.parameters.json").read_text()


def test_redis_is_entra_only_tls_only_with_a_data_policy_for_the_identity() -> None:
    cache = one("Microsoft.Cache/redis")
    assert "'aad-enabled': 'true'" in cache.block("redisConfiguration")
    for setting in ("disableAccessKeyAuthentication: true", "enableNonSslPort: false", "minimumTlsVersion: '1.2'"):
        assert setting in cache.body
    policy = one("Microsoft.Cache/redis/accessPolicyAssignments")
    assert policy.value("accessPolicyName") == "'Data Contributor'"
    assert policy.value("objectId") == "principalId"
    assert "principalId: gatewayIdentity.outputs.principalId" in _module_block("redis")
    redis = (INFRA / "modules" / "redis.bicep").read_text()
    assert "rediss://${cache.properties.hostName}:${cache.properties.sslPort}" in redis
    assert "MCPAAS_REDIS_URL string = redis.outputs.url" in (INFRA / "main.bicep").read_text()


def _module_block(name: str) -> str:
    main = (INFRA / "main.bicep").read_text()
    match = re.search(rf"^module \w+ 'modules/{name}\.bicep' = \{{(.*?)^\}}", main, re.MULTILINE | re.DOTALL)
    assert match, name
    return match.group(1)


def named(symbol: str) -> Resource:
    found = [r for r in RESOURCES if r.symbol == symbol and not r.existing]
    assert len(found) == 1, symbol
    return found[0]


@pytest.mark.parametrize("topic_symbol, topic_type, source, subscription_symbol, function, event_types", [
    ("registryTopic", "Microsoft.ContainerRegistry.Registries", "registry.id", "imagePushed", "image_pushed",
     ["Microsoft.ContainerRegistry.ImagePushed"]),
    # issue 12: tier changes of the APIM service arrive as resource writes on the group's topic
    ("groupTopic", "Microsoft.Resources.ResourceGroups", "resourceGroup().id", "apimChanged", "apim_changed",
     ["Microsoft.Resources.ResourceWriteSuccess"]),
])
def test_system_topics_in_main_and_their_function_subscriptions_outside(
        topic_symbol: str, topic_type: str, source: str, subscription_symbol: str, function: str,
        event_types: list[str]) -> None:
    from triggers.apim import RESOURCE_WRITE
    from triggers.event_grid import IMAGE_PUSHED

    assert {IMAGE_PUSHED, RESOURCE_WRITE} >= set(event_types)  # the types the functions handle
    topic = named(topic_symbol)
    assert (topic.value("topicType"), topic.value("source")) == (f"'{topic_type}'", source)
    assert topic.file == "eventgrid.bicep"
    subscription = named(subscription_symbol)
    # Event Grid validates a function endpoint at creation: deployed after the code
    assert subscription.file == "events.bicep"
    assert "endpointType: 'AzureFunction'" in subscription.block("destination")
    target = re.search(r"resourceId: '\$\{functionApp\.id\}/functions/(\w+)'", subscription.body)
    assert target and target.group(1) == function
    included = re.search(r"includedEventTypes: \[(.*?)\]", subscription.block("filter"), re.DOTALL)
    assert included and re.findall(r"'([\w.]+)'", included.group(1)) == event_types
    assert "'events.bicep'" not in (INFRA / "main.bicep").read_text()


def test_apim_subscription_takes_only_the_service_own_writes() -> None:
    from triggers.apim import SERVICE_WRITE

    filter_ = named("apimChanged").block("filter")
    assert "subjectBeginsWith: apimServiceId" in filter_
    assert re.search(r"key: 'data.operationName'\s*values: \[\s*'([^']+)'", filter_).group(1).lower() == SERVICE_WRITE


def test_azd_hooks_are_executable_posix_scripts() -> None:
    hooks = yaml.safe_load((REPO / "azure.yaml").read_text())["hooks"]
    assert set(hooks) == {"postprovision", "postdeploy"}
    for hook in hooks.values():
        script = REPO / hook["posix"]["run"]
        assert hook["posix"]["shell"] == "sh" and script.is_file() and script.stat().st_mode & 0o111
        assert script.read_text().startswith("#!/bin/sh\n")
    assert "infra/events.bicep" in (REPO / hooks["postdeploy"]["posix"]["run"]).read_text()


def test_control_plane_reaches_aks_with_entra_and_writes_only_the_servers_namespace() -> None:
    cluster = one("Microsoft.ContainerService/managedClusters")
    aad = cluster.block("aadProfile")
    assert "managed: true" in aad and "enableAzureRBAC: true" in aad
    assignments = {a.symbol: a for a in role_assignments_in("aks.bicep")}
    user, writer = assignments["controlPlaneUser"], assignments["deployer"]
    assert "clusterUser" in user.body and user.value("scope") == "cluster"
    assert user.value("principalId") == "principalId"
    # the Writer role at `<cluster id>/namespaces/<servers namespace>`, not the cluster
    assert "rbacWriter" in writer.body and writer.value("scope") == "servers"
    namespace = next(r for r in RESOURCES if r.symbol == "servers" and r.existing)
    assert namespace.type == "Microsoft.ContainerService/managedClusters/namespaces"
    assert (namespace.value("parent"), namespace.value("name")) == ("cluster", "serversNamespace")
    assert "serversNamespace: serversNamespace" in _module_block("aks")


def test_gateway_reads_only_the_artifacts_container() -> None:
    grant = named("gatewayArtifacts")
    assert grant.value("scope") == "artifacts" and "blobReader" in grant.body
    assert grant.value("principalId") == "gatewayPrincipalId"
    assert "gatewayPrincipalId: gatewayIdentity.outputs.principalId" in _module_block("storage")
