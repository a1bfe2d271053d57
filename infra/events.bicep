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

@description('System topic of the resource group (main.bicep output AZURE_RESOURCE_GROUP_TOPIC_NAME).')
param resourceGroupTopicName string

@description('ARM id of the API Management service (main.bicep output AZURE_APIM_SERVICE_ID).')
param apimServiceId string

resource groupTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: resourceGroupTopicName
}

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

// APIM service write -> apim_changed (triggers/apim.py): the function compares the SKU with
// the newest snapshot and restores the configuration after a tier change (FR-027). Only
// the service's own writes: child writes (APIs, named values, the restore's own PUTs) are
// filtered out by operationName, so a restore never triggers itself.
resource apimChanged 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: groupTopic
  name: 'apim-changed'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/apim_changed'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
      ]
      subjectBeginsWith: apimServiceId
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [
            'Microsoft.ApiManagement/service/write'
          ]
        }
      ]
    }
    // the restore must finish within 10 minutes of the change (NFR-REL-005): retry briefly
    retryPolicy: {
      maxDeliveryAttempts: 10
      eventTimeToLiveInMinutes: 10
    }
  }
}
