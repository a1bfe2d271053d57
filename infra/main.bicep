// MCPaaS on Azure: the control plane (Functions, Flex Consumption), its data and
// messaging, and the gateway's AKS cluster. Deployed by `azd up` (azure.yaml).
// Every resource carries the tags env/system/owner; every data-plane access is through
// Entra ID by one of two user-assigned identities (local auth and keys are disabled): the
// control plane's (Function app, APIM) and the gateway's (its pods, by workload identity),
// so a gateway pod cannot act as the control plane.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(32)
@description('azd environment name; prefixes resource names and becomes the env tag.')
param environmentName string

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Team or person accountable for the deployment (owner tag).')
param owner string = 'platform-team'

@description('Publisher e-mail shown by API Management.')
param apimPublisherEmail string = 'platform@example.com'

// Entra ID app registration of the MCPaaS API (created outside Bicep: Microsoft Graph).
// Callers present access tokens for it to the control plane and the gateway.
@description('Directory (tenant) id of the MCPaaS API app registration; tokens from other tenants are refused.')
param entraTenantId string = tenant().tenantId

@minLength(1)
@description('Application ID URI of the MCPaaS API app registration (e.g. api://mcpaas): the `aud` of v1 access tokens, and the resource the control plane requests its own tokens for (`<uri>/.default`).')
param entraAudience string

@description('Application (client) id of the same app registration: the `aud` of v2 access tokens. Empty: only v1 tokens are accepted.')
param entraApiClientId string = ''

@description('Client ids (`azp`/`appid`) allowed to call MCPaaS, e.g. the CLI\'s and the portal\'s app registrations. Empty: any client of the tenant. The control plane\'s own identity is always added to a non-empty list.')
param entraAllowedClientIds array = []

@description('Namespace the gateway runs in (MCPAAS_GATEWAY_NAMESPACE); its service account is the workload identity subject.')
param gatewayNamespace string = 'mcpaas-system'

@description('Namespace of hosted servers on AKS (MCPAAS_KUBE_NAMESPACE): the postprovision hook creates it; the control plane may write in it and nowhere else.')
param serversNamespace string = 'mcp-servers'

@description('Public base URL of the gateway when an ingress with TLS fronts it. Empty: the gateway LoadBalancer\'s Azure DNS name (HTTP on the gateway port, see infra/hooks/postprovision.sh).')
param gatewayPublicUrl string = ''

@description('Object id of who runs `azd up` (azd sets AZURE_PRINCIPAL_ID): the postprovision hook installs the gateway into AKS as them. Empty: no grant.')
param deployerPrincipalId string = ''

@description('Principal type of deployerPrincipalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param deployerPrincipalType string = 'User'

var tags = {
  env: environmentName
  system: 'mcpaas'
  owner: owner
}
// globally unique, lowercase suffix for names that must be unique across Azure
var suffix = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))

// Entra token validation settings, derived from the tenant: v2.0 and v1 (sts.windows.net)
// issuers, since the token version is a property of the app registration.
// https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-tokens
var entraIssuers = [
  'https://login.microsoftonline.com/${entraTenantId}/v2.0'
  'https://sts.windows.net/${entraTenantId}/'
]
var entraAudiences = empty(entraApiClientId) ? [entraAudience] : [entraAudience, entraApiClientId]
var entra = {
  jwksUrl: 'https://login.microsoftonline.com/${entraTenantId}/discovery/v2.0/keys'
  issuers: join(entraIssuers, ',')
  audiences: join(entraAudiences, ',')
  // the control plane calls the gateway with its identity's tokens (appid = its client id)
  allowedClients: join(empty(entraAllowedClientIds) ? [] : union(entraAllowedClientIds, [identity.outputs.clientId]), ',')
  allowedTenants: entraTenantId
}
// The gateway's LoadBalancer Service gets this Azure DNS label (postprovision hook), so
// its address is known before it exists: <label>.<location>.cloudapp.azure.com.
// 8080 is shared.manifests.GATEWAY_PORT.
var gatewayDnsLabel = 'mcpaas-gw-${suffix}'
var gatewayUrl = empty(gatewayPublicUrl) ? 'http://${gatewayDnsLabel}.${location}.cloudapp.azure.com:8080' : gatewayPublicUrl
// The service account shared.manifests.render_gateway renders in gatewayNamespace
// (tests/infra/test_settings.py renders it and compares).
var gatewaySubject = 'system:serviceaccount:${gatewayNamespace}:mcpaas-gateway'

// Document containers and their partition keys: shared/store/port.py CONTAINERS.
var containers = [
  {
    name: 'servers'
    partitionKey: 'id'
  }
  {
    name: 'revisions'
    partitionKey: 'server'
  }
  {
    name: 'audit'
    partitionKey: 'entity'
  }
  {
    name: 'invocations'
    partitionKey: 'server'
  }
  {
    name: 'cost_events'
    partitionKey: 'server'
  }
  {
    name: 'feedback'
    partitionKey: 'server'
  }
  {
    name: 'checklists'
    partitionKey: 'server'
  }
  {
    name: 'quota_samples'
    partitionKey: 'region'
  }
  {
    name: 'apim_snapshots'
    partitionKey: 'service'
  }
  {
    name: 'idempotency_keys'
    partitionKey: 'id'
  }
  {
    name: 'api_keys'
    partitionKey: 'id'
  }
]

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-mcpaas-${environmentName}'
    location: location
    tags: tags
  }
}

module gatewayIdentity 'modules/identity.bicep' = {
  name: 'gateway-identity'
  params: {
    name: 'id-mcpaas-gw-${environmentName}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    suffix: suffix
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'stmcpaas${suffix}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    name: 'cosmos-mcpaas-${suffix}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
    containers: containers
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    name: 'sb-mcpaas-${suffix}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv-mcpaas-${take(suffix, 13)}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
  }
}

module registry 'modules/acr.bicep' = {
  name: 'acr'
  params: {
    name: 'acrmcpaas${suffix}'
    location: location
    tags: tags
  }
}

module aks 'modules/aks.bicep' = {
  name: 'aks'
  params: {
    name: 'aks-mcpaas-${environmentName}'
    location: location
    tags: tags
    gatewayIdentityName: gatewayIdentity.outputs.name
    principalId: identity.outputs.principalId
    serversNamespace: serversNamespace
    registryName: registry.outputs.name
    workspaceId: monitoring.outputs.workspaceId
    gatewaySubject: gatewaySubject
    deployerPrincipalId: deployerPrincipalId
    deployerPrincipalType: deployerPrincipalType
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  params: {
    name: 'redis-mcpaas-${suffix}'
    location: location
    tags: tags
    principalId: gatewayIdentity.outputs.principalId
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    location: location
    tags: tags
    registryName: registry.outputs.name
  }
}

module apim 'modules/apim.bicep' = {
  name: 'apim'
  params: {
    name: 'apim-mcpaas-${suffix}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    principalId: identity.outputs.principalId
    publisherEmail: apimPublisherEmail
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: 'func-mcpaas-${suffix}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    identityPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    cosmosEndpoint: cosmos.outputs.endpoint
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    keyVaultUri: keyVault.outputs.uri
    blobAccountUrl: storage.outputs.blobEndpoint
    apimServiceId: apim.outputs.id
    gatewayUrl: gatewayUrl
    gatewayNamespace: gatewayNamespace
    aksClusterId: aks.outputs.id
    kubeNamespace: serversNamespace
    blobContainer: storage.outputs.artifactsContainer
    entra: entra
  }
}

output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output MCPAAS_API_URL string = functionApp.outputs.url
output MCPAAS_SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output MCPAAS_COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_AKS_CLUSTER_NAME string = aks.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_CLIENT_ID string = identity.outputs.clientId
// the gateway's service account is annotated with this client id (postprovision hook)
output AZURE_GATEWAY_CLIENT_ID string = gatewayIdentity.outputs.clientId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output AZURE_REGISTRY_TOPIC_NAME string = eventGrid.outputs.registryTopicName
output AZURE_RESOURCE_GROUP_TOPIC_NAME string = eventGrid.outputs.resourceGroupTopicName
output AZURE_APIM_SERVICE_ID string = apim.outputs.id
output AZURE_GATEWAY_DNS_LABEL string = gatewayDnsLabel

// The gateway's settings: azd puts outputs into the hooks' environment, so the
// postprovision hook renders the gateway (shared.manifests, which reads Settings) with
// the same values the Function app gets above.
output MCPAAS_STORE string = 'cosmos'
output MCPAAS_AUTH_MODE string = 'entra'
output MCPAAS_ENTRA_JWKS_URL string = entra.jwksUrl
output MCPAAS_ENTRA_ISSUERS string = entra.issuers
output MCPAAS_ENTRA_AUDIENCES string = entra.audiences
output MCPAAS_ENTRA_ALLOWED_CLIENTS string = entra.allowedClients
output MCPAAS_ENTRA_ALLOWED_TENANTS string = entra.allowedTenants
output MCPAAS_AUTH_SCOPES_SUPPORTED string = '${entraAudience}/.default'
output MCPAAS_CONTROL_PLANE_PRINCIPALS string = identity.outputs.principalId
output MCPAAS_KEY_VAULT_URL string = keyVault.outputs.uri
output MCPAAS_REDIS_URL string = redis.outputs.url
// the cache has access keys disabled: Entra ID tokens of the workload identity (redis.bicep)
output MCPAAS_REDIS_ENTRA string = 'true'
output MCPAAS_GATEWAY_URL string = gatewayUrl
output MCPAAS_GATEWAY_NAMESPACE string = gatewayNamespace
// the hook creates the servers' namespace (the control plane may not: namespace-scoped role)
output MCPAAS_KUBE_NAMESPACE string = serversNamespace
// the gateway reads code-project bundles from the artifact store (Storage Blob Data Reader)
output MCPAAS_BLOB_ACCOUNT_URL string = storage.outputs.blobEndpoint
output MCPAAS_BLOB_CONTAINER string = storage.outputs.artifactsContainer
