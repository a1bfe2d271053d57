// Service Bus namespace with the deploy-requests queue (triggers/service_bus.py).
// SAS keys are disabled: the app receives with its identity. A message that fails
// 10 deliveries moves to the queue's dead-letter sub-queue ($DeadLetterQueue).
param name string
param location string
param tags object
param principalId string

var dataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource deployRequests 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: 'deploy-requests'
  properties: {
    maxDeliveryCount: 10
    lockDuration: 'PT5M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
  }
}

// Receive only, only on this queue (the trigger); senders get Data Sender separately.
resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deployRequests.id, principalId, dataReceiver)
  scope: deployRequests
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
