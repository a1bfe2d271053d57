#!/bin/sh
# azd postprovision hook: build the gateway image in ACR and install the gateway into AKS.
#
# azd runs it from the project root after `azd provision` with main.bicep's outputs in the
# environment. The gateway's objects come from shared.manifests.render_gateway, the same
# code `mcpaas provision` (activities/arm.py install_gateway) applies, rendered with the
# MCPAAS_* outputs so the pods get the settings the Function app gets.
#
# Needs: az (logged in as AZURE_PRINCIPAL_ID, which main.bicep grants AKS RBAC Cluster
# Admin), kubectl, kubelogin (the cluster has local accounts disabled: Entra ID only) and
# the project venv (`make install`) or PYTHON pointing at an interpreter with the project.
#
# The gateway's LoadBalancer Service gets the Azure DNS label AZURE_GATEWAY_DNS_LABEL, so
# MCPAAS_GATEWAY_URL (http://<label>.<location>.cloudapp.azure.com:8080) is known before
# the Service exists. That leg is plain HTTP with bearer tokens until a TLS ingress fronts
# the gateway (then set the Bicep parameter gatewayPublicUrl); networking is a follow-up.
set -eu

: "${AZURE_RESOURCE_GROUP:?run from azd (azd provision sets it)}"
: "${AZURE_AKS_CLUSTER_NAME:?}" "${AZURE_FUNCTION_APP_NAME:?}" "${AZURE_CONTAINER_REGISTRY_NAME:?}" "${AZURE_CONTAINER_REGISTRY_ENDPOINT:?}"
: "${AZURE_GATEWAY_CLIENT_ID:?}" "${AZURE_GATEWAY_DNS_LABEL:?}" "${MCPAAS_GATEWAY_NAMESPACE:?}"
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || { echo "postprovision: $PYTHON not found: run \`make install\` or set PYTHON" >&2; exit 1; }

# a new tag per run (commit and time): the pod template changes, so the gateway rolls to
# the image just built even from the same commit with local changes
tag="$(git rev-parse --short=12 HEAD 2>/dev/null || echo local)-$(date -u +%Y%m%d%H%M%S)"
image="$AZURE_CONTAINER_REGISTRY_ENDPOINT/mcpaas-gateway:$tag"
echo "postprovision: building $image in $AZURE_CONTAINER_REGISTRY_NAME (az acr build, no local Docker)"
az acr build --registry "$AZURE_CONTAINER_REGISTRY_NAME" --image "mcpaas-gateway:$tag" --file Dockerfile .

# package servers run in pods of this same image (single-server mode, docs/kubernetes.md)
az functionapp config appsettings set --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "$AZURE_FUNCTION_APP_NAME" --settings "MCPAAS_GATEWAY_IMAGE=$image" --output none

kubeconfig="$(mktemp)"
objects="$(mktemp)"
trap 'rm -f "$kubeconfig" "$objects"' EXIT
az aks get-credentials --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_AKS_CLUSTER_NAME" \
  --file "$kubeconfig" --overwrite-existing
kubelogin convert-kubeconfig --login azurecli --kubeconfig "$kubeconfig"
export KUBECONFIG="$kubeconfig"

echo "postprovision: applying the gateway to namespace $MCPAAS_GATEWAY_NAMESPACE"
# the gateway's pods act as the gateway identity (workload identity federated in aks.bicep)
# and read their settings from a ConfigMap of the MCPAAS_* outputs in this environment;
# the servers' namespace comes last: the control plane's role is scoped to it and cannot
# create it (activities/kubernetes.py ensure_namespace)
MCPAAS_WORKLOAD_CLIENT_ID="$AZURE_GATEWAY_CLIENT_ID" "$PYTHON" -c '
import os, sys
from shared import kubernetes, manifests
options = manifests.options_from_settings()
objects = manifests.render_gateway(sys.argv[1], options, manifests.gateway_config(os.environ))
print(manifests.to_yaml([*objects, kubernetes.namespace_object(options.namespace)]))
' "$image" > "$objects"
# a new Azure RBAC for Kubernetes assignment takes up to 5 minutes to reach the cluster
attempt=1
until kubectl apply --server-side --field-manager=mcpaas-azd -f - < "$objects"; do
  [ "$attempt" -lt "${HOOK_APPLY_ATTEMPTS:-10}" ] || exit 1
  echo "postprovision: apply refused (attempt $attempt), retrying in 30 s while the role assignment propagates" >&2
  attempt=$((attempt + 1))
  sleep 30
done

# the DNS label is Azure-specific, so it is added here, not by the renderer
kubectl annotate --overwrite --namespace "$MCPAAS_GATEWAY_NAMESPACE" service \
  --selector app.kubernetes.io/component=gateway \
  "service.beta.kubernetes.io/azure-dns-label-name=$AZURE_GATEWAY_DNS_LABEL"
kubectl rollout status --namespace "$MCPAAS_GATEWAY_NAMESPACE" deployment \
  --selector app.kubernetes.io/component=gateway --timeout=600s
echo "postprovision: gateway installed; MCPAAS_GATEWAY_URL=${MCPAAS_GATEWAY_URL:-}"
