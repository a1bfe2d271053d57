"""Domain models of MCPaaS (pydantic v2).

`ServerSpec` is the public contract of DESIGN.md ("Public contract"): what a team asks
the platform to run. `Server` is the stored state of one server, `Revision` one applied
spec with its diff from the previous, `AuditEvent` one entry of the audit trail
(FR-005, FR-022).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from shared.auth.rbac import Share  # noqa: F401  (re-exported: a server's sharing grants, FR-018)
from shared.auth.principal import Role

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A model deployment name as cost events carry it (issue 12, FR-026): Azure OpenAI
# deployment names and model ids (`gpt-4o`, `meta/llama-3:70b`) fit; nothing that could
# break a CSV cell, a log line or a metric label does.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


def utc_now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class ServerKind(str, Enum):
    """How a server runs: stdio package in the gateway, container on AKS, or remote URL."""

    PACKAGE = "package"
    CONTAINER = "container"
    REMOTE = "remote"


class ServerStatus(str, Enum):
    """Lifecycle status of a server (DESIGN.md "Status values")."""

    PENDING = "Pending"
    DEPLOYING = "Deploying"
    RUNNING = "Running"
    ERROR = "Error"
    STOPPED = "Stopped"


def _check_env_names(value: dict[str, str]) -> dict[str, str]:
    bad = [name for name in value if not ENV_NAME.match(name)]
    if bad:
        raise ValueError(f"invalid environment variable names: {', '.join(sorted(bad))}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionMode(str, Enum):
    """How the gateway maps MCP sessions to stdio children of a `package` server.

    `isolated`: one child per session, every protocol feature intact. `shared`: one
    child serves many sessions (stateless tool servers); no sampling/elicitation/roots.
    """

    ISOLATED = "isolated"
    SHARED = "shared"


class NetworkAccess(str, Enum):
    """Network of a sandboxed stdio child (issue 10): `egress` keeps the host's network,
    `none` gives the child a network namespace of its own with only loopback."""

    EGRESS = "egress"
    NONE = "none"


class PackageLimits(_Strict):
    """Per-server resource limits of sandboxed stdio children and install steps.

    Unset fields take the gateway's defaults (`MCPAAS_SANDBOX_*` settings).
    `memory_mb`: memory of one child, MiB; `processes`: processes and threads of the
    server's sandbox user; `open_files`: descriptors per process; `cpu_seconds`: CPU time
    of one process, seconds (RLIMIT_CPU; unset means unlimited).
    """

    memory_mb: int | None = Field(default=None, ge=16, le=262144)
    processes: int | None = Field(default=None, ge=4, le=65536)
    open_files: int | None = Field(default=None, ge=16, le=1048576)
    cpu_seconds: int | None = Field(default=None, ge=1)


class SecretSource(_Strict):
    """One secret of a server, delivered to it as an environment variable (NFR-SEC-002).

    Exactly one of `value` (write-only: the control plane moves it into the secret store
    and keeps only the resulting reference) or `ref` (a secret-store reference, as
    returned by `shared.secrets`) is given. Stored specs, revisions, audit and operation
    inputs only ever carry `ref`.
    """

    ref: str | None = Field(default=None, min_length=1, max_length=512)
    value: SecretStr | None = Field(default=None, max_length=65536)

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.ref is None) == (self.value is None):
            raise ValueError("give exactly one of 'value' or 'ref'")
        return self


def _check_secret_names(value: dict[str, SecretSource], env: dict[str, str]) -> None:
    _check_env_names(dict.fromkeys(value, ""))
    clash = sorted(set(value) & set(env))
    if clash:
        raise ValueError(f"names in both env and secrets: {', '.join(clash)}")


class PackageSource(_Strict):
    """A stdio MCP server the gateway starts as a child process.

    `command` and `args` form the argv; `env` is added to the child's environment;
    `install` is an optional argv run once before first start (FR-014);
    `session_mode` picks one child per session or one shared child. `env` is not for
    secrets: `secrets` names values held in the secret store (NFR-SEC-002). `network`
    and `limits` shape the child's sandbox (None: egress and the gateway's defaults).
    `bundle` names an uploaded code bundle, `sha256:<64 hex>` (`POST /api/bundles`), that
    the gateway unpacks into the server's directory before `install` (docs/bundles.md).
    """

    command: str = Field(min_length=1, max_length=1024)
    args: list[str] = Field(default_factory=list, max_length=256)
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretSource] = Field(default_factory=dict, max_length=64)
    install: list[str] | None = None
    # None means `isolated` (the default), kept None so specs round-trip unchanged.
    session_mode: SessionMode | None = None
    network: NetworkAccess | None = None
    limits: PackageLimits | None = None
    # the CLI resolves a project path (`bundle: .`) to the digest before sending the spec
    bundle: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")

    @field_validator("command")
    @classmethod
    def _command_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("command must not be blank")
        return value

    @field_validator("env")
    @classmethod
    def _env_names_valid(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env_names(value)

    @model_validator(mode="after")
    def _secret_names_valid(self):
        _check_secret_names(self.secrets, self.env)
        return self


class ContainerResources(_Strict):
    """Kubernetes resource requests/limits in Kubernetes quantity notation."""

    cpu: str = "250m"
    memory: str = "256Mi"


class ContainerAutoscaling(_Strict):
    """HorizontalPodAutoscaler bounds and targets (percent of the requested CPU/memory)."""

    min_replicas: int = Field(default=1, ge=1, le=100)
    max_replicas: int = Field(default=3, ge=1, le=100)
    cpu_percent: int = Field(default=70, ge=1, le=100)
    memory_percent: int = Field(default=80, ge=1, le=100)

    @field_validator("max_replicas")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("min_replicas", 1):
            raise ValueError("must be at least min_replicas")
        return value


class ContainerSource(_Strict):
    """An MCP server image run on AKS and served over Streamable HTTP at `port` + `path`.

    `env` becomes the container's environment (a change rolls the pods through the
    config-hash annotation); `secrets` reach it through a Kubernetes Secret and
    `valueFrom`, never inline; `autoscaling` sets the HPA; `replicas` is the initial
    count before the HPA takes over. `auto_deploy` opts in to redeploys on ACR pushes
    of the same repository and tag.
    """

    image: str = Field(min_length=1, max_length=512)
    port: int = Field(default=8000, ge=1, le=65535)
    path: str = "/mcp"
    replicas: int = Field(default=1, ge=0, le=100)
    resources: ContainerResources = Field(default_factory=ContainerResources)
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretSource] = Field(default_factory=dict, max_length=64)
    autoscaling: ContainerAutoscaling = Field(default_factory=ContainerAutoscaling)
    auto_deploy: bool = False

    @field_validator("env")
    @classmethod
    def _env_names_valid(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env_names(value)

    @model_validator(mode="after")
    def _secret_names_valid(self):
        _check_secret_names(self.secrets, self.env)
        return self


class RemoteSource(_Strict):
    """An existing Streamable HTTP MCP endpoint the gateway proxies to."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)


SCOPE_PARAM = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class AccessPolicy(_Strict):
    """Who may use a server through the gateway, and which tools (issue 4, item 3).

    A caller may use the server when `roles`, `users` and `groups` are all empty, or it
    is an Admin, or it holds one of `roles`, or its subject or name is in `users`, or it is in one of
    `groups`. `tools` maps a tool name (or ``*`` for every unlisted tool) to the roles
    that may call it; tools matching no entry are open to every caller of the server.
    The gateway hides other tools from `tools/list` and refuses calls to them.
    """

    roles: list[Role] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list, max_length=1000)
    groups: list[str] = Field(default_factory=list, max_length=1000)
    tools: dict[str, list[Role]] = Field(default_factory=dict)


class TenancyModel(str, Enum):
    """`shared`: one server, each session's child bound to its caller's scope values;
    `dedicated`: one instance per scope value, each at its own endpoint."""

    SHARED = "shared"
    DEDICATED = "dedicated"


class Tenancy(_Strict):
    """Parameter isolation of a `package` server (FR-019, FR-023, NFR-SEC-005).

    `params` names the scope parameters the server needs (e.g. ``project_id``); the
    gateway passes the caller's bound value of each to the child as the environment
    variable of the upper-cased name (``PROJECT_ID``). `dedicated` takes exactly one.
    """

    model: TenancyModel = TenancyModel.SHARED
    params: list[str] = Field(min_length=1, max_length=8)

    @field_validator("params")
    @classmethod
    def _params_are_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not SCOPE_PARAM.match(name)]
        if bad:
            raise ValueError(f"scope parameters must be lowercase identifiers: {', '.join(bad)}")
        return value


class ServerSpec(_Strict):
    """What a team asks MCPaaS to run (DESIGN.md "ServerSpec").

    Exactly the section named by `kind` is present. Raises `pydantic.ValidationError`
    naming the failing fields.
    """

    name: str = Field(min_length=1, max_length=63)
    kind: ServerKind
    description: str = Field(default="", max_length=2000)
    owner_team: str = Field(default="", max_length=200)
    enabled: bool = True
    package: PackageSource | None = Field(default=None, validate_default=True)
    container: ContainerSource | None = Field(default=None, validate_default=True)
    remote: RemoteSource | None = Field(default=None, validate_default=True)
    access: AccessPolicy | None = None
    tenancy: Tenancy | None = None
    # the model deployment this server's calls are charged to when a call names none
    # (header `MCPaaS-Model`); docs/costs-and-quota.md
    model: str | None = Field(default=None, pattern=MODEL_NAME.pattern)

    @field_validator("name")
    @classmethod
    def _name_is_dns1123_label(cls, value: str) -> str:
        if not DNS1123_LABEL.fullmatch(value):
            raise ValueError("must be a DNS-1123 label: lowercase letters, digits and '-', "
                             "starting and ending with a letter or digit, at most 63 characters")
        return value

    @field_validator("package", "container", "remote")
    @classmethod
    def _exactly_the_kind_section(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None:  # kind itself failed validation; that error names the field
            return value
        if info.field_name == kind.value and value is None:
            raise ValueError(f"required when kind is '{kind.value}'")
        if info.field_name != kind.value and value is not None:
            raise ValueError(f"not allowed when kind is '{kind.value}'")
        return value

    @model_validator(mode="after")
    def _tenancy_fits(self) -> ServerSpec:
        tenancy = self.tenancy
        if tenancy is None:
            return self
        if self.kind != ServerKind.PACKAGE or self.package is None:
            raise ValueError("tenancy: only package servers take scope parameters")
        if tenancy.model == TenancyModel.DEDICATED and len(tenancy.params) != 1:
            raise ValueError("tenancy: dedicated takes exactly one scope parameter")
        if tenancy.model == TenancyModel.DEDICATED and self.package.bundle:
            # each dedicated instance runs in a directory of its own; bundles unpack into the server's
            raise ValueError("tenancy: dedicated tenancy does not take a code bundle yet")
        # Security: one shared child serves every session, so the first caller's scope
        # values would serve every later caller's session (cross-tenant access).
        if tenancy.model == TenancyModel.SHARED and self.package.session_mode == SessionMode.SHARED:
            raise ValueError("tenancy: shared tenancy needs session_mode isolated")
        return self


class ClusterEvent(BaseModel):
    """One Kubernetes event about a container server's objects or pods (FR-003).

    `object` is ``Kind/name`` of the involved object; `time` the event's last
    occurrence; `type` ``Normal`` or ``Warning``; `count` how often it repeated.
    https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/
    """

    time: datetime | None = None
    type: str = "Normal"
    reason: str = ""
    message: str = ""
    object: str = ""
    count: int = 1


class ReplicaCounts(BaseModel):
    """Replica counts of a container server's Deployment when last observed (UC3).

    `desired` is the Deployment's (HPA-owned) replica count; `ready`, `available`
    and `updated` come from its status.
    """

    desired: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    observed_at: datetime = Field(default_factory=utc_now)


class Server(BaseModel):
    """Stored state of one server (container `servers`, id and partition key = name).

    `revision` is the last successfully applied revision (0 before the first deploy);
    `latest_revision` the newest accepted one; `operation_id` the durable instance id of
    the workflow in flight, if any; `replicas` and `scaling_events` (newest first) are
    set for container servers only.
    """

    name: str
    spec: ServerSpec
    status: ServerStatus = ServerStatus.PENDING
    status_reason: str = ""
    revision: int = 0
    latest_revision: int = 0
    endpoint: str | None = None
    upstream_url: str | None = None  # in-cluster Service URL of a container server (gateway's upstream)
    operation_id: str | None = None
    shares: list[Share] = Field(default_factory=list)  # grants beyond the owner team (FR-018)
    # container servers: as last observed by a rollout poll or the reconcile timer
    replicas: ReplicaCounts | None = None
    scaling_events: list[ClusterEvent] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)


class Revision(BaseModel):
    """One accepted spec of a server (container `revisions`, partition key = server name).

    `diff` maps each changed dotted field path to `{"from": old, "to": new}`;
    `manifest_hash` is `shared.manifests.manifest_hash` of the spec (sha256 hex).
    """

    server: str
    number: int = Field(ge=1)
    spec: ServerSpec
    diff: dict[str, dict[str, Any]] = Field(default_factory=dict)
    manifest_hash: str = ""
    actor: str
    operation_id: str
    created_at: datetime = Field(default_factory=utc_now)


AuditResult = Literal["accepted", "succeeded", "failed", "allowed", "denied", "refused"]


class AuditEvent(BaseModel):
    """One entry of the audit trail (container `audit`, partition key = entity).

    `result` is ``accepted``, ``succeeded`` or ``failed`` for an operation, ``allowed``
    or ``denied`` for an authorization decision, ``refused`` for a security-clearance
    refusal (FR-020); `detail` carries a reason. `diff` is what a write changed,
    `{field: {"from": old, "to": new}}` (the revision diff for server writes; never a
    secret), and `trace_id` the W3C trace id of the span that wrote it (empty outside one).
    """

    id: str
    actor: str
    action: str
    entity: str
    result: AuditResult
    detail: str = ""
    operation_id: str | None = None
    time: datetime = Field(default_factory=utc_now)
    diff: dict[str, dict[str, Any]] | None = None
    trace_id: str = ""


def spec_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Field-level diff of two JSON-like specs.

    Returns `{dotted.path: {"from": old, "to": new}}` for every leaf that differs; lists
    compare as wholes. `before=None` (first revision) lists every leaf with `from: None`.
    """
    changes: dict[str, dict[str, Any]] = {}

    def walk(old: Any, new: Any, path: str) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new)):
                walk(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        elif isinstance(new, dict) and old is None:
            for key in sorted(new):
                walk(None, new[key], f"{path}.{key}" if path else key)
        elif old != new:
            changes[path] = {"from": old, "to": new}

    walk(before or {}, after, "")
    return changes


class OperationJob(BaseModel):
    """Input of the `deploy` and `delete` orchestrations and their activities.

    `action` is ``create``, ``update``, ``rollback`` or ``delete``; `revision` the
    revision number the operation applies (0 for delete); `spec` the accepted spec as JSON.
    """

    name: str
    operation_id: str
    actor: str
    action: Literal["create", "update", "rollback", "delete"]
    revision: int = 0
    spec: dict[str, Any] | None = None
    rollback_to: int | None = None  # the revision whose spec a rollback re-applies
    # the spec runs as Kubernetes objects (`shared.manifests.in_cluster`), decided when accepted
    in_cluster: bool = False


class ShareList(_Strict):
    """Body of `GET`/`PUT /api/servers/{name}/shares`: every sharing grant of one server."""

    items: list[Share] = Field(default_factory=list, max_length=200)


class RollbackRequest(_Strict):
    """Body of `POST /api/servers/{name}/rollback`: the revision whose spec to re-apply."""

    revision: int = Field(ge=1)


class ControlPlaneSpec(_Strict):
    """What `POST /api/controlplane` provisions on Azure (FR-001).

    A tagged resource group, an ACR, an AKS cluster (OIDC issuer, workload identity, Azure
    CNI with network policy, cluster autoscaler between `min_nodes` and `max_nodes`) on
    the first of `vm_sizes` the region offers and the vCPU quota allows, the ACR attached,
    then the gateway (`gateway_image`) installed in the cluster.
    """

    subscription_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")
    location: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9]+$")
    resource_group: str = Field(min_length=1, max_length=90, pattern=r"^[-\w.()]+$")
    cluster_name: str = Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
    registry_name: str = Field(min_length=5, max_length=50, pattern=r"^[a-zA-Z0-9]+$")
    environment: str = Field(default="dev", min_length=1, max_length=32)
    owner: str = Field(min_length=1, max_length=200)
    vm_sizes: list[str] = Field(default_factory=lambda: ["Standard_D4ds_v5", "Standard_D4s_v5",
                                                         "Standard_D4as_v5"], min_length=1, max_length=20)
    min_nodes: int = Field(default=2, ge=1, le=100)
    max_nodes: int = Field(default=5, ge=1, le=1000)
    kubernetes_version: str = Field(default="1.33", pattern=r"^\d+\.\d+(\.\d+)?$")
    gateway_image: str = Field(default="mcr.microsoft.com/mcpaas/gateway:0.1.0", min_length=1, max_length=512)

    @property
    def tags(self) -> dict[str, str]:
        """Tags on every resource: env, system, owner."""
        return {"env": self.environment, "system": "mcpaas", "owner": self.owner}
