#!/bin/sh
# azd postdeploy hook: subscribe the control plane's Event Grid functions (infra/events.bicep).
#
# This cannot be part of main.bicep: Event Grid validates an AzureFunction endpoint when
# the subscription is created, and the functions exist only after `azd deploy` published
# function_app.py. The deployment is idempotent, so every `azd up`/`azd deploy` re-runs it.
set -eu

: "${AZURE_RESOURCE_GROUP:?run from azd (azd provision sets it)}"
: "${AZURE_FUNCTION_APP_NAME:?}" "${AZURE_REGISTRY_TOPIC_NAME:?}"
: "${AZURE_RESOURCE_GROUP_TOPIC_NAME:?}" "${AZURE_APIM_SERVICE_ID:?}"

echo "postdeploy: subscribing $AZURE_FUNCTION_APP_NAME to $AZURE_REGISTRY_TOPIC_NAME and $AZURE_RESOURCE_GROUP_TOPIC_NAME"
az deployment group create \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name mcpaas-events \
  --template-file infra/events.bicep \
  --parameters registryTopicName="$AZURE_REGISTRY_TOPIC_NAME" functionAppName="$AZURE_FUNCTION_APP_NAME" \
  resourceGroupTopicName="$AZURE_RESOURCE_GROUP_TOPIC_NAME" apimServiceId="$AZURE_APIM_SERVICE_ID" \
  --output none
