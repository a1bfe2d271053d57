// The one user-assigned identity of MCPaaS: the Function app, APIM and the gateway's
// pods (AKS workload identity) act as it; each module grants it only what it needs.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
