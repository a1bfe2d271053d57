// Azure Cache for Redis: the gateway's provisioning locks, ready flags and rate-limit
// counters shared by its replicas (MCPAAS_REDIS_URL). Entra ID authentication only:
// access keys are disabled, and the gateway's identity gets the built-in 'Data Contributor'
// data access policy (read/write data, no admin commands such as FLUSHALL or CONFIG).
// https://learn.microsoft.com/azure/azure-cache-for-redis/cache-azure-active-directory-for-authentication
param name string
param location string
param tags object
@description('Object id of the gateway\'s identity, the only Redis data user.')
param principalId string

resource cache 'Microsoft.Cache/redis@2024-03-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'Standard'
      family: 'C'
      capacity: 1
    }
    redisVersion: '6'
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    disableAccessKeyAuthentication: true
    redisConfiguration: {
      'aad-enabled': 'true'
    }
  }
}

resource dataContributor 'Microsoft.Cache/redis/accessPolicyAssignments@2024-03-01' = {
  parent: cache
  name: 'mcpaas'
  properties: {
    accessPolicyName: 'Data Contributor'
    objectId: principalId
    objectIdAlias: 'mcpaas'
  }
}

output hostName string = cache.properties.hostName
// TLS only (the non-TLS port is off): the rediss scheme on the TLS port
output url string = 'rediss://${cache.properties.hostName}:${cache.properties.sslPort}'
