"""The control plane's connection to an AKS cluster on Azure: no kubeconfig file, no secret.

AKS runs with AKS-managed Entra ID integration, Azure RBAC for Kubernetes authorization
and local accounts disabled (infra/modules/aks.bicep), so the API server accepts only
Entra ID access tokens for the AKS server application
(https://learn.microsoft.com/azure/aks/kubelogin-authentication). The Function app's
managed identity therefore:

- reads the API server's address and CA from ARM: `list_cluster_user_credentials`
  (needs "Azure Kubernetes Service Cluster User Role"); that kubeconfig names the
  cluster and an exec plugin (kubelogin), never a credential, so only its `server` and
  `certificate-authority-data` are used;
- authenticates each request with its own Entra token for the AKS server scope
  `AKS_SCOPE`, from `DefaultAzureCredential`, renewed `REFRESH_MARGIN_SECONDS` before it
  expires (the same role kubelogin's `--login msi` plays for kubectl);
- is authorized by Azure RBAC: "Azure Kubernetes Service RBAC Writer" on the servers'
  namespace only (https://learn.microsoft.com/azure/aks/manage-azure-rbac); a cluster
  made by the `provision` orchestration, which also installs the gateway, grants "Azure
  Kubernetes Service RBAC Cluster Admin" instead (`activities.arm.arm_cluster_access`).

Selected by `MCPAAS_AKS_CLUSTER_ID` in `shared.kubernetes.api_client` (adapter selection;
a kubeconfig file stays the local and test target).
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml
from azure.core.credentials import AccessToken, TokenCredential
from azure.mgmt.containerservice import ContainerServiceClient
from kubernetes import client

# the AKS AAD server application, the same for every managed-Entra cluster
# (kubelogin's --server-id); `.default` asks for the roles Azure RBAC grants
AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
# renew this long before `expires_on`: a request signed just before expiry may still be in flight
REFRESH_MARGIN_SECONDS = 300
# segments exclude whitespace too: `[^/]` alone would take a trailing newline into the name
CLUSTER_ID = re.compile(r"(?i)/subscriptions/(?P<subscription>[^/\s]+)/resourceGroups/(?P<group>[^/\s]+)/"
                        r"providers/Microsoft\.ContainerService/managedClusters/(?P<name>[^/\s]+)")


@dataclass(frozen=True)
class ClusterEndpoint:
    """Where the API server is and the CA its certificate chains to (PEM text)."""

    host: str
    ca_pem: str


def endpoint_from_kubeconfig(kubeconfig: bytes) -> ClusterEndpoint:
    """`server` and decoded `certificate-authority-data` of the kubeconfig's current context.

    Raises ValueError when the kubeconfig names no cluster, or one without a CA (AKS
    always sends one; without it TLS could not be verified).
    """
    config = yaml.safe_load(kubeconfig) or {}
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or []}
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    current = contexts.get(config.get("current-context"), {}).get("cluster")
    cluster = clusters.get(current) or next(iter(clusters.values()), None)
    if not cluster or not cluster.get("server"):
        raise ValueError("the cluster user kubeconfig names no API server")
    if not cluster.get("certificate-authority-data"):
        raise ValueError(f"the cluster user kubeconfig has no CA for {cluster['server']}")
    return ClusterEndpoint(cluster["server"], base64.b64decode(cluster["certificate-authority-data"]).decode())


class AksConnection:
    """ApiClient configurations for one AKS cluster (see module); thread-safe, one per process.

    `cluster_id` is the cluster's ARM id; `credential` signs both the ARM call and the
    Kubernetes requests; `arm_options` go to the ContainerServiceClient (tests pass a
    `transport`). The endpoint is read from ARM once per connection.
    """

    def __init__(self, cluster_id: str, credential: TokenCredential, **arm_options: Any) -> None:
        match = CLUSTER_ID.fullmatch(cluster_id)
        if not match:
            raise ValueError(f"not an AKS cluster id: {cluster_id!r}")
        self.subscription, self.group, self.name = match["subscription"], match["group"], match["name"]
        self.credential, self.arm_options = credential, arm_options
        self._endpoint: ClusterEndpoint | None = None
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def endpoint(self) -> ClusterEndpoint:
        """The API server and its CA, from the cluster user credentials (ARM, fetched once).

        Raises azure.core.exceptions.HttpResponseError for ARM errors (403 without the
        Cluster User Role), ValueError for a kubeconfig without server or CA.
        """
        with self._lock:
            if self._endpoint is None:
                arm = ContainerServiceClient(self.credential, self.subscription, **self.arm_options)
                result = arm.managed_clusters.list_cluster_user_credentials(self.group, self.name)
                kubeconfigs = result.kubeconfigs or []
                if not kubeconfigs or not kubeconfigs[0].value:
                    raise ValueError(f"cluster {self.name} returned no user kubeconfig")
                self._endpoint = endpoint_from_kubeconfig(kubeconfigs[0].value)
            return self._endpoint

    def token(self) -> str:
        """A current Entra access token for `AKS_SCOPE`, renewed near its expiry."""
        with self._lock:
            if self._token is None or self._token.expires_on - time.time() < REFRESH_MARGIN_SECONDS:
                self._token = self.credential.get_token(AKS_SCOPE)
            return self._token.token

    def _refresh(self, configuration: client.Configuration) -> None:
        # the client calls this before signing every request (Configuration.get_api_key_with_prefix)
        configuration.api_key["authorization"] = self.token()

    def configuration(self) -> client.Configuration:
        """A client Configuration: ARM's host and CA, verified TLS, a self-renewing bearer."""
        endpoint = self.endpoint()
        configuration = client.Configuration(host=endpoint.host, ca_cert_data=endpoint.ca_pem)
        configuration.verify_ssl = True
        configuration.api_key_prefix["authorization"] = "Bearer"
        configuration.api_key["authorization"] = self.token()
        # the generated client declares the hook attribute as None, though it calls it
        configuration.refresh_api_key_hook = self._refresh  # type: ignore[assignment]
        return configuration


@lru_cache(maxsize=4)
def connection(cluster_id: str) -> AksConnection:
    """The process's connection to `cluster_id` with `DefaultAzureCredential` (managed identity)."""
    from azure.identity import DefaultAzureCredential  # late: only the Azure path needs it

    return AksConnection(cluster_id, DefaultAzureCredential())
