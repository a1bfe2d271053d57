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

// The resource group's system topic: ARM publishes Microsoft.Resources.ResourceWriteSuccess
// for every successful write in the group, including the API Management service's tier
// changes (the service's own topic has no SKU events). `apim_changed` (triggers/apim.py)
// subscribes to the service's own writes in infra/events.bicep (FR-027, NFR-OPS-010).
resource groupTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-${resourceGroup().name}'
  location: 'global'
  tags: tags
  properties: {
    source: resourceGroup().id
    topicType: 'Microsoft.Resources.ResourceGroups'
  }
}

output resourceGroupTopicName string = groupTopic.name
