// MCPaaS on Azure: the control plane (Functions, Flex Consumption), its data and
// messaging, and the gateway's AKS cluster. Deployed by `azd up` (azure.yaml).
// Every resource carries the tags env/system/owner; every data-plane access is by the
// one user-assigned identity through Entra ID (local auth and keys are disabled).
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

var tags = {
  env: environmentName
  system: 'mcpaas'
  owner: owner
}
// globally unique, lowercase suffix for names that must be unique across Azure
var suffix = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))

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
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    name: 'cosmos-mcpaas-${suffix}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
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
    identityName: identity.outputs.name
    principalId: identity.outputs.principalId
    registryName: registry.outputs.name
    workspaceId: monitoring.outputs.workspaceId
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
    keyVaultName: keyVault.outputs.name
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
