"""The one settings object of MCPaaS (pydantic-settings, environment prefix ``MCPAAS_``).

Read once per process through :func:`get_settings`; nothing else reads ``os.environ``
for MCPaaS configuration. Every field has an embedded default so the platform runs on
one machine with no Azure account (DESIGN.md, "Storage" and "devhost").
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.auth.principal import AuthMode

# A list setting given in the environment as comma-separated text (or a JSON-free list in code).
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Process configuration.

    Attributes:
        data_dir: directory holding the SQLite store, durable history, logs and
            per-server working directories (default ``.mcpaas`` under the cwd).
        api_host / api_port: where devhost serves the control plane (``/api``).
        gateway_host / gateway_port: where the gateway serves MCP traffic.
        gateway_stream_after_seconds: a request of a client that accepts JSON and SSE is
            answered as plain JSON when its response comes within this many seconds and
            before any related message; else as a resumable SSE stream. 0: SSE always.
        gateway_access_log: one uvicorn log line per HTTP request (off by default: every
            MCP request is in the `invocations` audit and the metrics already, and the
            extra line costs throughput).
        gateway_url: base URL the control plane uses to reach the gateway
            (defaults to ``http://{gateway_host}:{gateway_port}``).
        api_url: base URL clients use to reach the control plane.
        max_body_bytes: largest accepted REST request body, in bytes (1 MiB); the
            triggers enforce it so the caller gets a 400 naming the body.
        host_max_body_bytes: largest body devhost buffers at all, in bytes; mirrors the
            Functions host's 100 MB HTTP request limit
            (https://learn.microsoft.com/azure/azure-functions/functions-scale#service-limits).
        task_hub: Durable Functions task hub name.
        kubeconfig: kubeconfig file of the cluster that runs ``container`` servers;
            unset means no Kubernetes target (``container`` is refused with 422).
        kube_namespace: namespace of ``container`` servers (``mcp-servers``).
        gateway_namespace: namespace the gateway runs in; the only source of ingress
            that the servers' NetworkPolicy admits (``mcpaas-system``).
        workload_client_id: client id of the user-assigned managed identity the
            servers' ServiceAccounts federate with (AKS workload identity); optional.
        rollout_poll_seconds / rollout_timeout_seconds: how often the deploy
            orchestration checks a rollout (durable timer) and when it gives up.
        store: document-store adapter, ``sqlite`` (embedded default) or ``cosmos``
            (Azure Cosmos DB for NoSQL; DESIGN.md "Storage").
        cosmos_endpoint: Cosmos DB account endpoint (``https://<account>.documents.azure.com:443/``).
        cosmos_key: account key; unset in Azure, where ``DefaultAzureCredential`` (managed
            identity) is used; set only for an emulator. A ``SecretStr``, never logged.
        cosmos_database: database holding the containers (created if missing).
        cosmos_verify_tls: verify the endpoint's TLS certificate; ``false`` only for an
            emulator's self-signed certificate.
        blob_account_url: Blob Storage account URL (``https://<account>.blob.core.windows.net``),
            used with ``DefaultAzureCredential``; selects the blob artifact store.
        blob_connection_string: connection string (Azurite); selects the blob artifact
            store and takes precedence over ``blob_account_url``. Never logged.
        blob_container: blob container holding artifacts (created if missing).
        servicebus_namespace: fully qualified Service Bus namespace
            (``<name>.servicebus.windows.net``); when set, ``mcpaas deploy --queue``
            sends there with Entra ID auth instead of to devhost's local queue.
        auth_mode: how callers authenticate (issue 4): ``local`` (embedded issuer whose
            RSA key is ``auth_key_path``; the default), ``entra`` (Entra ID access tokens)
            or ``none`` (protocol test rigs only; logs a warning at start).
        entra_jwks_url: the tenant's JWKS (``https://login.microsoftonline.com/<tid>/discovery/v2.0/keys``).
        entra_issuers / entra_audiences: accepted ``iss`` and ``aud`` values.
        entra_allowed_clients: accepted ``azp``/``appid`` values; empty admits any client.
        entra_allowed_tenants: accepted ``tid`` values; empty admits the issuers' tenants.
            All four lists read from the environment as comma-separated text.
        control_plane_principals: Entra object ids (``oid``) of the control plane's managed
            identity; with auth mode ``entra`` only these may use the reserved deploy-probe
            scope (locally the control plane is the subject ``mcpaas-controlplane``).
        auth_scopes_supported: OAuth scopes the gateway's protected resource metadata
            lists (RFC 9728 `scopes_supported`), e.g. ``api://mcpaas/.default``; empty
            omits the field.
        gateway_rate_limit_identity / _server / _tool: gateway rate limits (FR-025) as
            ``limits`` strings (``"600/minute"``): per caller, per caller and server, per
            caller, server and tool; empty disables one. Stored in ``redis_url`` when set
            (shared by replicas), else in memory.
        clearance_*: the security clearance allowlists (FR-020, ``shared.clearance``):
            package launchers (basenames or absolute-path globs), package name globs,
            container registries and remote hosts (globs; comma-separated text).
    """

    model_config = SettingsConfigDict(env_prefix="MCPAAS_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path.cwd() / ".mcpaas")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=7071, ge=1, le=65535)
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    gateway_access_log: bool = False
    gateway_url_override: str | None = Field(default=None, alias="MCPAAS_GATEWAY_URL")
    api_url_override: str | None = Field(default=None, alias="MCPAAS_API_URL")
    max_body_bytes: int = 1024 * 1024
    host_max_body_bytes: int = 100 * 1024 * 1024
    task_hub: str = "mcpaas"
    kubeconfig: Path | None = None
    kube_namespace: str = "mcp-servers"
    gateway_namespace: str = "mcpaas-system"
    workload_client_id: str | None = None
    rollout_poll_seconds: float = Field(default=5.0, gt=0)
    rollout_timeout_seconds: float = Field(default=900.0, gt=0)
    gateway_allowed_origins: str = ("http://localhost,https://localhost,http://127.0.0.1,"
                                    "https://127.0.0.1,http://[::1],https://[::1]")
    gateway_max_body_bytes: int = 4 * 1024 * 1024
    gateway_event_store_size: int = Field(default=1000, ge=0)
    gateway_session_idle_seconds: float = Field(default=1800.0, gt=0)
    gateway_max_sessions_per_server: int = Field(default=64, ge=1)
    gateway_warm_pool_size: int = Field(default=0, ge=0)
    gateway_stream_after_seconds: float = Field(default=1.0, ge=0)
    redis_url: str | None = None
    # storage adapters (issue 6): only adapter selection may depend on these
    store: Literal["sqlite", "cosmos"] = "sqlite"
    cosmos_endpoint: str | None = None
    cosmos_key: SecretStr | None = None
    cosmos_database: str = "mcpaas"
    cosmos_verify_tls: bool = True
    blob_account_url: str | None = None
    blob_connection_string: SecretStr | None = None
    blob_container: str = "artifacts"
    servicebus_namespace: str | None = None
    # identity and clearance (issue 4): read by the control plane and the gateway alike
    auth_mode: AuthMode = AuthMode.LOCAL
    entra_jwks_url: str | None = None
    entra_issuers: CommaList = Field(default_factory=list)
    entra_audiences: CommaList = Field(default_factory=list)
    entra_allowed_clients: CommaList = Field(default_factory=list)
    entra_allowed_tenants: CommaList = Field(default_factory=list)
    control_plane_principals: CommaList = Field(default_factory=list)
    auth_scopes_supported: CommaList = Field(default_factory=list)
    gateway_rate_limit_identity: str = "600/minute"
    gateway_rate_limit_server: str = "300/minute"
    gateway_rate_limit_tool: str = ""
    clearance_launchers: CommaList = Field(default_factory=lambda: [
        "python", "python3", "python3.*", "uv", "uvx", "npx", "node", "sh", "pip", "npm", "mcp-server-*",
        "*/.venv/bin/*", "*/node_modules/.bin/*", "/usr/bin/*", "/usr/local/bin/*"])
    clearance_packages: CommaList = Field(default_factory=lambda: [
        "*mcp*", "@modelcontextprotocol/*", "@azure/*", "@microsoft/*"])
    clearance_registries: CommaList = Field(default_factory=lambda: [
        "mcr.microsoft.com", "*.azurecr.io", "ghcr.io", "docker.io", "localhost:*", "127.0.0.1:*"])
    clearance_remote_hosts: CommaList = Field(default_factory=lambda: [
        "127.0.0.1", "localhost", "::1", "*.azurewebsites.net", "*.azurecontainerapps.io", "*.azure-api.net"])

    @field_validator("entra_issuers", "entra_audiences", "entra_allowed_clients", "entra_allowed_tenants",
                     "control_plane_principals", "auth_scopes_supported",
                     "clearance_launchers", "clearance_packages", "clearance_registries",
                     "clearance_remote_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway, without a trailing slash."""
        url = self.gateway_url_override or f"http://{self.gateway_host}:{self.gateway_port}"
        return url.rstrip("/")

    @property
    def api_url(self) -> str:
        """Base URL of the control plane, without a trailing slash."""
        url = self.api_url_override or f"http://{self.api_host}:{self.api_port}"
        return url.rstrip("/")

    @property
    def store_path(self) -> Path:
        """SQLite file of the embedded document store."""
        return self.data_dir / "store.sqlite"

    @property
    def durable_path(self) -> Path:
        """SQLite file holding durable orchestration history (devhost)."""
        return self.data_dir / "durable.sqlite"

    @property
    def queues_path(self) -> Path:
        """SQLite file of devhost's local Service Bus queues."""
        return self.data_dir / "queues.sqlite"

    @property
    def auth_key_path(self) -> Path:
        """PEM file of the local issuer's RSA signing key (mode 0600)."""
        return self.data_dir / "auth" / "signing-key.pem"

    @property
    def servers_dir(self) -> Path:
        """Per-server working directories and logs (gateway)."""
        return self.data_dir / "servers"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()
