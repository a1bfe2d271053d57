// Event Grid system topic of the container registry: ACR publishes ImagePushed here, and
// the Function `image_pushed` (triggers/event_grid.py) redeploys the servers tracking the
// pushed image. The topic is provisioned with the rest; its event subscriptions are not:
// Event Grid validates an AzureFunction endpoint when the subscription is created, which
// fails until the code is deployed, so they live in infra/events.bicep, deployed by the
// azd postdeploy hook (infra/hooks/postdeploy.sh).
param location string
param tags object
param registryName string

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource registryTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-${registryName}'
  location: location
  tags: tags
  properties: {
    source: registry.id
    topicType: 'Microsoft.ContainerRegistry.Registries'
  }
}

output registryTopicName string = registryTopic.name

// Issue 12 (APIM change trigger) adds here: a system topic on the API Management service
// (topicType 'Microsoft.ApiManagement.Service'), with its subscription in infra/events.bicep.
