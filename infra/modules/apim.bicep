// API Management in front of the gateway's MCP endpoints. It runs as the MCPaaS
// identity (to read Key Vault named values); the control plane may change its APIs
// (API Management Service Contributor on this instance only).
param name string
param location string
param tags object
param identityId string
param principalId string
param publisherEmail string

var serviceContributor = '312a565d-c81f-4fd8-895a-4e21e48d571c'

resource service 'Microsoft.ApiManagement/service@2023-05-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Consumption'
    capacity: 0
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    publisherEmail: publisherEmail
    publisherName: 'MCPaaS'
  }
}

resource operator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(service.id, principalId, serviceContributor)
  scope: service
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = service.name
output id string = service.id
output gatewayUrl string = service.properties.gatewayUrl
