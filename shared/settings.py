"""The one settings object of MCPaaS (pydantic-settings, environment prefix ``MCPAAS_``).

Read once per process through :func:`get_settings`; nothing else reads ``os.environ``
for MCPaaS configuration. Every field has an embedded default so the platform runs on
one machine with no Azure account (DESIGN.md, "Storage" and "devhost").
"""

from __future__ import annotations

import ipaddress
import os
import sys
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
        gateway_max_sessions_per_server / gateway_max_shared_sessions_per_server: sessions
            one gateway process holds per ``isolated`` server (each a child process) and
            per ``shared`` server (each a few KiB); beyond them ``initialize`` answers 503
            with ``Retry-After`` (docs/scale.md).
        gateway_listen_backlog: the listening socket's accept queue (the kernel caps it
            at ``net.core.somaxconn``); a burst of new connections beyond it is dropped.
        gateway_keep_alive_seconds: an idle keep-alive connection is closed after this
            long; above the 5 s idle expiry of common HTTP clients and the 60 s of load
            balancers, so the gateway never closes a connection a client is reusing.
        gateway_url: base URL the control plane uses to reach the gateway
            (defaults to ``http://{gateway_host}:{gateway_port}``).
        gateway_replica_url: this gateway replica's own base URL as the other replicas
            reach it, for session hops (docs/replicas.md); on Kubernetes
            ``http://$(POD_IP):8080`` from the downward API. Defaults to ``gateway_url``.
        api_url: base URL clients use to reach the control plane.
        max_body_bytes: largest accepted REST request body, in bytes (1 MiB); the
            triggers enforce it so the caller gets a 400 naming the body.
        host_max_body_bytes: largest body devhost buffers at all, in bytes; mirrors the
            Functions host's 100 MB HTTP request limit
            (https://learn.microsoft.com/azure/azure-functions/functions-scale#service-limits).
        task_hub: Durable Functions task hub name.
        kubeconfig: kubeconfig file of the cluster that runs ``container`` servers;
            unset means no Kubernetes target (``container`` is refused with 422).
        aks_cluster_id: ARM id of the AKS cluster that runs ``container`` and ``package``
            servers (``/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerService/
            managedClusters/…``); the control plane on Azure reaches its API server with an
            Entra token of ``DefaultAzureCredential`` (``shared.aks``, docs/kubernetes.md).
            ``kubeconfig`` wins when both are set. See ``kubernetes_target``.
        package_processes: with no Kubernetes target, each ``package`` server runs as its
            own single-server gateway process that the control plane starts on this host
            (``shared.package_processes``: the production-shaped run's twin of package
            pods, docs/kubernetes.md); ignored when ``kubernetes_target`` holds.
        kube_namespace: namespace of ``container`` servers (``mcp-servers``).
        gateway_namespace: namespace the gateway runs in; the only source of ingress
            that the servers' NetworkPolicy admits (``mcpaas-system``).
        workload_client_id: client id of the user-assigned managed identity the
            servers' ServiceAccounts federate with (AKS workload identity); optional.
        rollout_poll_seconds / rollout_timeout_seconds: how often the deploy
            orchestration checks a rollout (durable timer) and when it gives up.
        rbac_poll_seconds / rbac_wait_seconds: how often the provision orchestration
            retries the gateway install while the cluster's API server still answers 403
            (a new Azure RBAC role assignment propagating) and when it gives up.
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
        bundle_max_bytes / bundle_max_files / bundle_max_unpacked_bytes: limits of one code
            bundle (docs/bundles.md): compressed upload size in bytes (413 above it), entries
            (files and directories), and bytes of file content once unpacked.
        key_vault_url: Azure Key Vault URL (``https://<vault>.vault.azure.net``) of the
            secret store, used with ``DefaultAzureCredential``; unset selects the embedded
            store encrypted at rest under ``secrets_dir`` (docs/secrets.md).
        servicebus_namespace: fully qualified Service Bus namespace
            (``<name>.servicebus.windows.net``); when set, ``mcpaas deploy --queue``
            sends there with Entra ID auth instead of to devhost's local queue.
        host_key: devhost's host (master) key for its runtime routes (``/runtime/...``,
            ``/admin/...``), sent as ``x-functions-key`` or ``?code=``; unset: generated at
            first start into ``host_key_path`` (mode 0600). ``shared.keyfiles``.
        gateway_metrics_token: bearer token a scraper sends to the gateway's ``/metrics``;
            unset: generated into ``metrics_token_path``. Set it (same value on every
            replica) where Prometheus scrapes pods. ``shared.keyfiles``.
        auth_mode: how callers authenticate (issue 4): ``local`` (embedded issuer whose
            RSA key is ``auth_key_path``; the default), ``entra`` (Entra ID access tokens)
            or ``none`` (protocol test rigs only; logs a warning at start).
        entra_jwks_url: the tenant's JWKS (``https://login.microsoftonline.com/<tid>/discovery/v2.0/keys``).
        entra_issuers / entra_audiences: accepted ``iss`` and ``aud`` values.
        entra_allowed_clients: accepted ``azp``/``appid`` values; empty admits any client.
        entra_allowed_tenants: accepted ``tid`` values; empty admits the issuers' tenants.
            All four lists read from the environment as comma-separated text.
        entra_tenant_id / entra_cli_client_id / entra_cli_scope: what ``mcpaas login --entra``
            signs in with (device code, ``azure.identity.DeviceCodeCredential``): the tenant,
            the CLI's public client app registration, and the API scope (e.g.
            ``api://mcpaas/.default``); each can also be given as a flag.
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
        gateway_single_server / gateway_single_server_spec: single-server mode (issue 11
            item 4, docs/kubernetes.md): the process serves only this `package` server at
            ``/mcp``, from this ServerSpec JSON (a package-server pod's ConfigMap sets both).
        gateway_image: the gateway image a package-server pod runs (set where the control
            plane has a Kubernetes target; the postprovision hook sets the one it built).
        gateway_package_pods: the shared gateway never starts a package server's children:
            it serves package servers only through their own pods (`upstream_url`), and
            refuses (422) one that has none. Set in the gateway's ConfigMap on Kubernetes.
        secrets_mount_dir: a directory of files, one per secret (a mounted Kubernetes
            Secret); when set the secret store reads references there (package-server pods).
        redis_entra: authenticate to ``redis_url`` with Entra ID tokens of
            ``DefaultAzureCredential`` (Azure Cache for Redis with access keys disabled).
        gateway_sandbox: how stdio children and install steps run (issue 10,
            docs/sandbox.md): ``bwrap`` (bubblewrap; default on Linux) or ``none``
            (default elsewhere; refuses team-owned servers not opted in by
            ``gateway_unsandboxed_teams``, comma-separated team names).
        sandbox_read_paths: extra host paths the sandbox shows read-only (comma-separated).
        sandbox_memory_mb / _processes / _open_files / _cpu_seconds: default limits of a
            sandboxed child (`PackageLimits`); cpu None = unlimited.
        sandbox_uid_base / sandbox_uid_count: when the gateway runs as root, each server
            runs as its own uid in ``[base, base + count)``.
        audit_spill_max_bytes: size cap of each gateway process's audit spill file
            (``audit_spill_dir``), which holds invocation records while the store is
            unavailable; records beyond it are refused and counted (docs/audit.md).
        auth_token_cache_size: verified bearer tokens and API keys the gateway keeps
            (LRU, keyed by the credential's SHA-256; a token never past its ``exp``).
        auth_api_key_cache_seconds: how long a verified API key is trusted without a
            store read: a revoked or expired key stops working within this bound.
        clearance_*: the security clearance lists (FR-020, ``shared.clearance``,
            docs/clearance.md; globs, comma-separated text): ``launchers`` admitted
            (bare names resolved through PATH; path globs only if an operator adds them),
            ``refused_launchers`` refused even when admitted (shells, ``env``, ``busybox``),
            ``allow_inline_code`` (false: no ``python -c``, ``sh -c``, ``node -e``, stdin
            programs, ...), ``packages`` a fetching launcher may download,
            ``package_sources`` admitted non-registry sources (URL, git, path, tarball,
            index; none by default), ``refused_env`` variable names ``package.env`` may not
            set (loader and interpreter hooks), container ``registries``, ``remote_hosts``.
        remote_allowed_networks: CIDRs a ``remote`` server may reach although they are
            loopback, private, link-local, unique-local, CGNAT or otherwise not global
            (``127.0.0.0/8,::1/128``); none by default. Checked at validation and by the
            gateway at every connect (``shared.egress``). The platform's own control plane
            and gateway endpoints stay refused.
        resource_group: the Azure resource group of this deployment (azd's ``AZURE_RESOURCE_GROUP``),
            shown in runbooks (issue 14); unset locally, where runbooks ask for it.
        feedback_rate_limit: feedback posts per identity (FR-011), a ``limits`` string;
            stored in ``redis_url`` when set, else in this process's memory.
        apim_service_id: ARM id of the API Management service whose configuration is
            exported and restored after a tier change (FR-027, docs/apim-restore.md); unset
            turns the export timer, the Event Grid trigger and ``/api/apim/*`` off.
        apim_poll_seconds / apim_restore_timeout_seconds: how often the restore checks that
            the service is ``Succeeded`` again (durable timer) and when it gives up waiting
            (9 minutes: the restore must finish within 10, NFR-REL-005).
        cost_events: the gateway writes one cost event per ``tools/call`` (FR-026,
            docs/costs-and-quota.md); off only to measure what emitting costs.
        quota_limits: per model deployment, ``{"tokens_per_minute": n, "requests_per_minute": n}``
            (JSON); the embedded quota sampler's limits (FR-028). Unknown deployments are not watched.
        quota_threshold / quota_window_seconds / quota_bucket_seconds: usage above
            ``quota_threshold`` of a limit in every bucket of the last ``quota_window_seconds``
            raises an advisory; buckets are ``quota_bucket_seconds`` long (one per timer run).
        quota_accounts: ARM ids of Azure OpenAI / AI Foundry accounts; set, quota usage and
            limits come from Azure Monitor metrics and the accounts' deployments instead.
        quota_webhook_url: optional URL an advisory (raised and cleared) is POSTed to as JSON.
    """

    model_config = SettingsConfigDict(env_prefix="MCPAAS_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path.cwd() / ".mcpaas")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=7071, ge=1, le=65535)
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    gateway_access_log: bool = False
    gateway_url_override: str | None = Field(default=None, alias="MCPAAS_GATEWAY_URL")
    gateway_replica_url: str | None = None
    api_url_override: str | None = Field(default=None, alias="MCPAAS_API_URL")
    max_body_bytes: int = 1024 * 1024
    host_max_body_bytes: int = 100 * 1024 * 1024
    task_hub: str = "mcpaas"
    kubeconfig: Path | None = None
    aks_cluster_id: str | None = Field(
        default=None, pattern=r"(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                              r"Microsoft\.ContainerService/managedClusters/[^/]+$")
    package_processes: bool = False
    kube_namespace: str = "mcp-servers"
    gateway_namespace: str = "mcpaas-system"
    workload_client_id: str | None = None
    rollout_poll_seconds: float = Field(default=5.0, gt=0)
    rollout_timeout_seconds: float = Field(default=900.0, gt=0)
    rbac_poll_seconds: float = Field(default=15.0, gt=0)
    rbac_wait_seconds: float = Field(default=600.0, gt=0)
    gateway_allowed_origins: str = ("http://localhost,https://localhost,http://127.0.0.1,"
                                    "https://127.0.0.1,http://[::1],https://[::1]")
    gateway_max_body_bytes: int = 4 * 1024 * 1024
    gateway_event_store_size: int = Field(default=1000, ge=0)
    gateway_session_idle_seconds: float = Field(default=1800.0, gt=0)
    gateway_max_sessions_per_server: int = Field(default=64, ge=1)
    gateway_max_shared_sessions_per_server: int = Field(default=4096, ge=1)
    gateway_listen_backlog: int = Field(default=4096, ge=1)
    gateway_keep_alive_seconds: int = Field(default=75, ge=1)
    gateway_warm_pool_size: int = Field(default=0, ge=0)
    gateway_stream_after_seconds: float = Field(default=1.0, ge=0)
    # single-server mode of a package-server pod (issue 11 item 4, docs/kubernetes.md)
    gateway_single_server: str | None = None
    gateway_single_server_spec: str | None = None
    gateway_image: str | None = None
    gateway_package_pods: bool = False
    secrets_mount_dir: Path | None = None
    # sandbox of stdio children and install steps (issue 10, docs/sandbox.md)
    gateway_sandbox: Literal["bwrap", "none"] = Field(
        default_factory=lambda: "bwrap" if sys.platform.startswith("linux") else "none")
    gateway_unsandboxed_teams: CommaList = Field(default_factory=list)
    sandbox_read_paths: CommaList = Field(default_factory=list)
    sandbox_memory_mb: int = Field(default=1024, ge=16)
    sandbox_processes: int = Field(default=1024, ge=4)
    sandbox_open_files: int = Field(default=1024, ge=16)
    sandbox_cpu_seconds: int | None = Field(default=None, ge=1)
    sandbox_uid_base: int = Field(default=200_000, ge=1000)
    sandbox_uid_count: int = Field(default=100_000, ge=1)
    redis_url: str | None = None
    redis_entra: bool = False
    # storage adapters (issue 6): only adapter selection may depend on these
    store: Literal["sqlite", "cosmos"] = "sqlite"
    cosmos_endpoint: str | None = None
    cosmos_key: SecretStr | None = None
    cosmos_database: str = "mcpaas"
    cosmos_verify_tls: bool = True
    blob_account_url: str | None = None
    blob_connection_string: SecretStr | None = None
    blob_container: str = "artifacts"
    # code bundles (issue 13 item 2, docs/bundles.md)
    bundle_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    bundle_max_files: int = Field(default=10_000, ge=1)
    bundle_max_unpacked_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    servicebus_namespace: str | None = None
    # keys of the platform's own entry points (issue 10, NFR-SEC-004): docs/entry-points.md
    host_key: SecretStr | None = None
    gateway_metrics_token: SecretStr | None = None
    # secret store (issue 10, NFR-SEC-002): Key Vault when set, else the embedded store
    key_vault_url: str | None = None
    # identity and clearance (issue 4): read by the control plane and the gateway alike
    auth_mode: AuthMode = AuthMode.LOCAL
    entra_jwks_url: str | None = None
    entra_issuers: CommaList = Field(default_factory=list)
    entra_audiences: CommaList = Field(default_factory=list)
    entra_allowed_clients: CommaList = Field(default_factory=list)
    entra_allowed_tenants: CommaList = Field(default_factory=list)
    # the CLI's device-code sign-in (`mcpaas login --entra`, cli/login.py)
    entra_tenant_id: str | None = None
    entra_cli_client_id: str | None = None
    entra_cli_scope: str | None = None
    control_plane_principals: CommaList = Field(default_factory=list)
    auth_scopes_supported: CommaList = Field(default_factory=list)
    gateway_rate_limit_identity: str = "600/minute"
    gateway_rate_limit_server: str = "300/minute"
    gateway_rate_limit_tool: str = ""
    # invocation audit and the guard's caches (issue 10 item 6, docs/audit.md)
    audit_spill_max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096)
    auth_token_cache_size: int = Field(default=10_000, ge=0)
    auth_api_key_cache_seconds: float = Field(default=5.0, ge=0)
    clearance_launchers: CommaList = Field(default_factory=lambda: [
        "python", "python3", "python3.*", "uv", "uvx", "npx", "node", "pip", "pip3", "npm", "mcp-server-*"])
    clearance_refused_launchers: CommaList = Field(default_factory=lambda: [
        "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "fish", "csh", "tcsh", "busybox", "toybox", "env"])
    clearance_allow_inline_code: bool = False
    clearance_packages: CommaList = Field(default_factory=lambda: [
        "*mcp*", "@modelcontextprotocol/*", "@azure/*", "@microsoft/*"])
    clearance_package_sources: CommaList = Field(default_factory=list)
    clearance_refused_env: CommaList = Field(default_factory=lambda: [
        "PATH", "LD_*", "DYLD_*", "NODE_OPTIONS", "PYTHONSTARTUP", "PYTHONINSPECT", "BASH_ENV", "ENV",
        "PERL5OPT", "RUBYOPT"])
    clearance_registries: CommaList = Field(default_factory=lambda: [
        "mcr.microsoft.com", "*.azurecr.io", "ghcr.io", "docker.io", "localhost:*", "127.0.0.1:*"])
    clearance_remote_hosts: CommaList = Field(default_factory=lambda: [
        "127.0.0.1", "localhost", "::1", "*.azurewebsites.net", "*.azurecontainerapps.io", "*.azure-api.net"])
    remote_allowed_networks: CommaList = Field(default_factory=list)
    # runbooks and feedback (issue 14, docs/runbooks.md)
    resource_group: str | None = None
    feedback_rate_limit: str = "20/hour"
    # APIM tier-change restore (issue 12 item 3, docs/apim-restore.md)
    apim_service_id: str | None = Field(
        default=None, pattern=r"(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                              r"Microsoft\.ApiManagement/service/[^/]+$")
    apim_poll_seconds: float = Field(default=15.0, gt=0)
    apim_restore_timeout_seconds: float = Field(default=540.0, gt=0)
    # cost events and quota advisories (issue 12 items 1-2, docs/costs-and-quota.md)
    cost_events: bool = True
    quota_limits: dict[str, dict[Literal["tokens_per_minute", "requests_per_minute"],
                                 Annotated[int, Field(gt=0)]]] = Field(default_factory=dict)
    quota_threshold: float = Field(default=0.8, gt=0, le=1)
    quota_window_seconds: int = Field(default=300, ge=1)
    quota_bucket_seconds: int = Field(default=60, ge=1, le=3600)
    quota_accounts: CommaList = Field(default_factory=list)
    quota_webhook_url: str | None = Field(default=None, pattern=r"^https?://")

    @field_validator("entra_issuers", "entra_audiences", "entra_allowed_clients", "entra_allowed_tenants",
                     "control_plane_principals", "auth_scopes_supported",
                     "clearance_launchers", "clearance_packages", "clearance_registries",
                     "clearance_remote_hosts", "clearance_refused_launchers", "clearance_package_sources",
                     "clearance_refused_env", "remote_allowed_networks", "gateway_unsandboxed_teams",
                     "sandbox_read_paths", "quota_accounts", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("remote_allowed_networks")
    @classmethod
    def _networks_valid(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad CIDR
        return value

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway, without a trailing slash."""
        url = self.gateway_url_override or f"http://{self.gateway_host}:{self.gateway_port}"
        return url.rstrip("/")

    @property
    def kubernetes_target(self) -> bool:
        """Whether a cluster runs `container` and `package` servers: a kubeconfig or an AKS cluster id."""
        return self.kubeconfig is not None or self.aks_cluster_id is not None

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
    def secrets_dir(self) -> Path:
        """Embedded secret store: its AES key and encrypted SQLite file (mode 0700 dir)."""
        return self.data_dir / "secrets"

    @property
    def host_key_path(self) -> Path:
        """devhost's generated host key when ``host_key`` is unset (mode 0600)."""
        return self.data_dir / "auth" / "host-key"

    @property
    def metrics_token_path(self) -> Path:
        """The gateway's generated metrics scrape token when ``gateway_metrics_token`` is unset."""
        return self.data_dir / "auth" / "metrics-token"

    @property
    def audit_spill_dir(self) -> Path:
        """Spill files of audit records the store could not take yet (gateway)."""
        return self.data_dir / "audit-spill"

    @property
    def servers_dir(self) -> Path:
        """Per-server working directories and logs (gateway)."""
        return self.data_dir / "servers"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()


def host_environment(names: frozenset[str], prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """The process environment's variables named in `names` or starting with one of
    `prefixes`, as a new dict (the gateway passes these neutral values, such as PATH and
    the locale, to the children it starts; issue 10 item 2). Not MCPaaS configuration:
    that is `Settings`; this and `process_environment` are the only other readers."""
    return {key: value for key, value in os.environ.items() if key in names or key.startswith(prefixes)}


def process_environment() -> dict[str, str]:
    """The whole process environment, as a new dict: for the platform's own processes that
    `mcpaas up` and `mcpaas dev` start (devhost and the gateway read their `Settings` from
    it). Never for hosted code, which gets `host_environment`'s allowlist."""
    return dict(os.environ)
