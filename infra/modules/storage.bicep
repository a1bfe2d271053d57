// The storage Durable Functions and the Functions host need (task hub queues/tables,
// leases, the Flex Consumption deployment package). Shared keys are disabled: the app
// reaches it with its identity (AzureWebJobsStorage__credential = managedidentity).
param name string
param location string
param tags object
param principalId string
@description('Object id of the gateway\'s identity: it reads artifacts (code-project bundles), nothing else here.')
param gatewayPrincipalId string

// Blob Data Owner: host leases and the deployment package; Queue and Table Data
// Contributor: the Durable Functions task hub (Azure Storage provider).
var roles = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
]
// Storage Blob Data Reader, for the gateway on the artifacts container only
var blobReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource packages 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: 'app-package'
  properties: {
    publicAccess: 'None'
  }
}

// the artifact store (shared/blobs.py): APIM configuration snapshots (docs/apim-restore.md)
// and code-project bundles the gateway reads
resource artifacts 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: 'artifacts'
  properties: {
    publicAccess: 'None'
  }
}

resource dataAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in roles: {
  name: guid(account.id, principalId, role)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

resource gatewayArtifacts 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(artifacts.id, gatewayPrincipalId, blobReader)
  scope: artifacts
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobReader)
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = account.name
output artifactsContainer string = artifacts.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}app-package'
