// Cosmos DB (NoSQL, serverless) holding the document store (shared/store). Keys are
// disabled (disableLocalAuth): the app uses the built-in Data Contributor role through
// a data-plane role assignment to its identity.
param name string
param location string
param tags object
param principalId string
@description('Object id of the gateway\'s identity: it reads servers and writes invocations, audit and cost events.')
param gatewayPrincipalId string
@description('Containers as {name, partitionKey} (shared/store/port.py CONTAINERS).')
param containers array

// Cosmos DB Built-in Data Contributor (data plane, not an Azure RBAC role)
var dataContributor = '00000000-0000-0000-0000-000000000002'

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    locations: [
      {
        locationName: location
        failoverPriority: 0
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    backupPolicy: {
      type: 'Continuous'
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: 'mcpaas'
  tags: tags
  properties: {
    resource: {
      id: 'mcpaas'
    }
  }
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = [for c in containers: {
  parent: database
  name: c.name
  tags: tags
  properties: {
    resource: {
      id: c.name
      partitionKey: {
        paths: [
          '/${c.partitionKey}'
        ]
        kind: 'Hash'
      }
    }
  }
}]

resource dataAccess 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = [for principal in [
  principalId
  gatewayPrincipalId
]: {
  parent: account
  name: guid(account.id, principal, dataContributor)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataContributor}'
    principalId: principal
    scope: account.id
  }
}]

output endpoint string = account.properties.documentEndpoint
