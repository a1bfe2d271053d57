// The control plane: function_app.py on Flex Consumption (Linux, Python 3.11).
// Every connection is identity-based (`<name>__credential = managedidentity` with the
// user-assigned identity's client id); the only secret is a Key Vault reference,
// resolved by the platform with keyVaultReferenceIdentity.
param name string
param location string
param tags object
param identityId string
param identityClientId string
@description('Object id of the identity: the control plane\'s subject in Entra tokens')
param identityPrincipalId string
param storageAccountName string
param deploymentContainerUrl string
param appInsightsConnectionString string
param cosmosEndpoint string
param serviceBusNamespace string
param keyVaultUri string
param keyVaultName string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the app to deploy `api` (azure.yaml) by this tag
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertMode: 'Optional'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'ServiceBusConnection__fullyQualifiedNamespace'
          value: serviceBusNamespace
        }
        {
          name: 'ServiceBusConnection__credential'
          value: 'managedidentity'
        }
        {
          name: 'ServiceBusConnection__clientId'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'MCPAAS_STORE'
          value: 'cosmos'
        }
        {
          name: 'MCPAAS_AUTH_MODE'
          value: 'entra'
        }
        {
          name: 'MCPAAS_CONTROL_PLANE_PRINCIPALS'
          value: identityPrincipalId
        }
        {
          name: 'MCPAAS_COSMOS_ENDPOINT'
          value: cosmosEndpoint
        }
        {
          name: 'MCPAAS_SERVICEBUS_NAMESPACE'
          value: serviceBusNamespace
        }
        {
          name: 'MCPAAS_KEY_VAULT_URI'
          value: keyVaultUri
        }
        {
          name: 'MCPAAS_GATEWAY_ADMIN_TOKEN'
          value: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=gateway-admin-token)'
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: 100
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
