// Key Vault for every secret MCPaaS uses (RBAC authorization, no access policies): the
// secret store of hosted servers' secrets (shared/secrets/keyvault.py, MCPAAS_KEY_VAULT_URL)
// and any Key Vault reference in app settings.
param name string
param location string
param tags object
param principalId string
@description('Object id of the gateway\'s identity: it reads the secrets of the stdio servers it starts.')
param gatewayPrincipalId string

// Key Vault Secrets Officer: the control plane writes, rotates and deletes hosted servers'
// secrets (write-only values, docs/secrets.md); reading is included.
var secretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
// Key Vault Secrets User: the gateway only reads.
var secretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
  }
}

resource officer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, secretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource gatewayReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, gatewayPrincipalId, secretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUser)
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
