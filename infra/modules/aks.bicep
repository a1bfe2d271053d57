// AKS for the gateway and container MCP servers: OIDC issuer + workload identity so
// the gateway's pods act as the gateway identity without secrets; Entra ID auth with
// Azure RBAC and no local accounts. The control plane (Function app identity) reaches the
// API server with Entra tokens (shared/aks.py): Cluster User to read the endpoint from
// ARM, RBAC Writer on the servers' namespace only.
param name string
param location string
param tags object
@description('Name of the gateway\'s user-assigned identity, which the gateway\'s service account federates with.')
param gatewayIdentityName string
@description('Object id of the control plane\'s identity (the Function app).')
param principalId string
@description('Namespace of hosted servers (MCPAAS_KUBE_NAMESPACE): the only one the control plane may write.')
param serversNamespace string
param registryName string
param workspaceId string

@description('Workload identity subject of the gateway pods: system:serviceaccount:<namespace>:<service account>, as shared.manifests.render_gateway renders them.')
param gatewaySubject string

@description('Object id of who runs `azd up`; the postprovision hook installs the gateway as them. Empty: no grant.')
param deployerPrincipalId string = ''

@description('Principal type of deployerPrincipalId (User, or ServicePrincipal in CI).')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param deployerPrincipalType string = 'User'

var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
// Azure Kubernetes Service Cluster User Role: listClusterUserCredential only, the API
// server's address and CA (that kubeconfig holds no credential on an Entra-only cluster).
var clusterUser = '4abbcc35-e782-43d8-92c5-2d3f1bd2253f'
// Azure Kubernetes Service RBAC Writer: the control plane applies servers' objects.
var rbacWriter = 'a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb'
// Azure Kubernetes Service RBAC Cluster Admin, for azd's deployer only: the postprovision
// hook creates the gateway's Namespace, a cluster-scoped object the namespace-level roles
// (Writer, Admin) do not manage. Azure RBAC for Kubernetes gives even a subscription
// Owner no Kubernetes data access by itself.
var rbacClusterAdmin = 'b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b'

resource gatewayIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: gatewayIdentityName
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource cluster 'Microsoft.ContainerService/managedClusters@2024-05-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Base'
    tier: 'Standard'
  }
  properties: {
    dnsPrefix: name
    disableLocalAccounts: true
    enableRBAC: true
    aadProfile: {
      managed: true
      enableAzureRBAC: true
    }
    oidcIssuerProfile: {
      enabled: true
    }
    securityProfile: {
      workloadIdentity: {
        enabled: true
      }
    }
    autoUpgradeProfile: {
      upgradeChannel: 'patch'
    }
    networkProfile: {
      networkPlugin: 'azure'
      networkPolicy: 'azure'
    }
    agentPoolProfiles: [
      {
        name: 'system'
        mode: 'System'
        count: 2
        vmSize: 'Standard_D4ds_v5'
        osType: 'Linux'
        osDiskType: 'Ephemeral'
        enableEncryptionAtHost: true
        maxPods: 50
        enableAutoScaling: true
        minCount: 2
        maxCount: 5
        availabilityZones: [
          '1'
          '2'
          '3'
        ]
      }
    ]
    addonProfiles: {
      kubeDashboard: {
        enabled: false
      }
      omsagent: {
        enabled: true
        config: {
          logAnalyticsWorkspaceResourceID: workspaceId
        }
      }
      azurepolicy: {
        enabled: true
      }
      azureKeyvaultSecretsProvider: {
        enabled: true
        config: {
          enableSecretRotation: 'true'
        }
      }
    }
  }
}

// The gateway's service account exchanges its projected token for the gateway identity
// (never the control plane's: a gateway pod cannot act as the control plane).
resource gatewayFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: gatewayIdentity
  name: 'aks-gateway'
  properties: {
    issuer: cluster.properties.oidcIssuerProfile.issuerURL
    subject: gatewaySubject
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource kubeletPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, cluster.id, acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
    principalId: cluster.properties.identityProfile.kubeletidentity.objectId
    principalType: 'ServicePrincipal'
  }
}

// Azure RBAC for Kubernetes takes a namespace as the scope `<cluster id>/namespaces/<name>`
// (https://learn.microsoft.com/azure/aks/manage-azure-rbac). It is no ARM resource of its
// own: this `existing` reference only names that scope (Bicep warns BCP081 on the type).
resource servers 'Microsoft.ContainerService/managedClusters/namespaces@2024-05-01' existing = {
  parent: cluster
  name: serversNamespace
}

resource controlPlaneUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(cluster.id, principalId, clusterUser)
  scope: cluster
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', clusterUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource deployer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(cluster.id, serversNamespace, principalId, rbacWriter)
  scope: servers
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacWriter)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource installer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(cluster.id, deployerPrincipalId, rbacClusterAdmin)
  scope: cluster
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacClusterAdmin)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

output name string = cluster.name
output id string = cluster.id
output oidcIssuerUrl string = cluster.properties.oidcIssuerProfile.issuerURL
