// The control plane: function_app.py on Flex Consumption (Linux, Python 3.11).
// Every connection is identity-based (`<name>__credential = managedidentity` with the
// user-assigned identity's client id). No app setting holds a secret: a future one must be
// a Key Vault reference, resolved by the platform with keyVaultReferenceIdentity.
// Every MCPAAS_* setting is a field of shared.settings.Settings; tests/infra/test_settings.py
// checks that those the Azure adapters need (cosmos store, entra auth, Key Vault secret
// store, gateway URL) are set here.
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
@description('Blob endpoint of the artifact store (APIM snapshots).')
param blobAccountUrl string
@description('ARM id of the API Management service whose configuration is snapshotted and restored.')
param apimServiceId string
@description('Base URL the control plane reaches the gateway at (deploy probes, admin routes).')
param gatewayUrl string
param gatewayNamespace string
@description('ARM id of the AKS cluster; the control plane reaches its API server with Entra tokens (shared/aks.py).')
param aksClusterId string
@description('Namespace of hosted servers on that cluster.')
param kubeNamespace string
@description('Blob container of the artifact store.')
param blobContainer string
@description('Entra ID token validation: JWKS URL, accepted issuers, audiences, client ids and tenant ids; lists comma-separated.')
param entra object

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
          name: 'MCPAAS_KEY_VAULT_URL'
          value: keyVaultUri
        }
        {
          name: 'MCPAAS_ENTRA_JWKS_URL'
          value: entra.jwksUrl
        }
        {
          name: 'MCPAAS_ENTRA_ISSUERS'
          value: entra.issuers
        }
        {
          name: 'MCPAAS_ENTRA_AUDIENCES'
          value: entra.audiences
        }
        {
          name: 'MCPAAS_ENTRA_ALLOWED_CLIENTS'
          value: entra.allowedClients
        }
        {
          name: 'MCPAAS_ENTRA_ALLOWED_TENANTS'
          value: entra.allowedTenants
        }
        {
          name: 'MCPAAS_GATEWAY_URL'
          value: gatewayUrl
        }
        {
          name: 'MCPAAS_GATEWAY_NAMESPACE'
          value: gatewayNamespace
        }
        {
          name: 'MCPAAS_BLOB_ACCOUNT_URL'
          value: blobAccountUrl
        }
        {
          name: 'MCPAAS_APIM_SERVICE_ID'
          value: apimServiceId
        }
        {
          name: 'MCPAAS_AKS_CLUSTER_ID'
          value: aksClusterId
        }
        {
          name: 'MCPAAS_KUBE_NAMESPACE'
          value: kubeNamespace
        }
        {
          name: 'MCPAAS_BLOB_CONTAINER'
          value: blobContainer
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
