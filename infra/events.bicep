// Event Grid subscriptions to the control plane's Event Grid functions. Deployed AFTER
// the code by the azd postdeploy hook (infra/hooks/postdeploy.sh), not by main.bicep:
// creating a subscription with an AzureFunction endpoint makes Event Grid validate the
// function, which exists only once `azd deploy` has published function_app.py.
// Idempotent: the hook runs it on every `azd up`/`azd deploy`.
targetScope = 'resourceGroup'

@description('System topic of the container registry (main.bicep output AZURE_REGISTRY_TOPIC_NAME).')
param registryTopicName string

@description('The control plane Function app (main.bicep output AZURE_FUNCTION_APP_NAME).')
param functionAppName string

resource registryTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: registryTopicName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// ACR push -> image_pushed (triggers/event_grid.py IMAGE_PUSHED is the event type it handles)
resource imagePushed 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: registryTopic
  name: 'image-pushed'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/image_pushed'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.ContainerRegistry.ImagePushed'
      ]
    }
    // image_pushed raises while another operation on the server is in flight, so a
    // redelivery (exponential back-off, up to a day) starts the deploy later
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

// Issue 12 (APIM change trigger) adds here: a subscription on the API Management system
// topic for 'Microsoft.ApiManagement.*' resource-write events to its function. No such
// function exists yet, and a subscription to a missing function fails validation.
