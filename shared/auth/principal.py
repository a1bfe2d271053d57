"""Who is calling: the authenticated principal every authorization decision uses."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field


class AuthMode(str, Enum):
    """How callers authenticate (`MCPAAS_AUTH_MODE`): Entra ID tokens, the embedded
    local issuer, or nothing at all (protocol test rigs only). Defined here, beside the
    principal, so `shared.settings` can name it without importing the store."""

    ENTRA = "entra"
    LOCAL = "local"
    NONE = "none"


class Role(str, Enum):
    """Platform roles, least to most privileged (FR-006)."""

    READER = "Reader"
    DEVELOPER = "Developer"
    OPERATOR = "Operator"
    ADMIN = "Admin"


class Principal(BaseModel):
    """An authenticated caller.

    `subject` is the stable id (Entra `oid`, local user name, or API key id); `kind`
    says how it authenticated; `servers` limits an API key to those servers (None =
    any); `scopes` maps a scope parameter (e.g. ``project_id``) to the values the
    caller is bound to (token claim `mcpaas_scopes`, or the API key's `scopes`), which
    the gateway enforces for servers with a `tenancy` (FR-019). Carries no credential
    material, so it is safe to log.
    """

    subject: str
    name: str = ""
    kind: Literal["user", "service", "api_key", "anonymous"] = "user"
    roles: frozenset[Role] = Field(default_factory=frozenset)
    groups: frozenset[str] = Field(default_factory=frozenset)
    tenant: str | None = None
    servers: frozenset[str] | None = None
    scopes: dict[str, frozenset[str]] = Field(default_factory=dict)

    def has_role(self, role: Role) -> bool:
        """True when the principal holds `role` itself (no hierarchy implied)."""
        return role in self.roles


SCOPES_CLAIM = "mcpaas_scopes"


def parse_scopes(value: object) -> dict[str, frozenset[str]]:
    """Scope bindings from a claim or key record: `{param: value | [values]}`.

    Anything else (not a dict, non-string values) binds nothing, so a malformed claim
    can only narrow access, never widen it.
    """
    if not isinstance(value, dict):
        return {}
    scopes: dict[str, frozenset[str]] = {}
    for param, values in value.items():
        items = [values] if isinstance(values, str) else values
        if isinstance(param, str) and isinstance(items, list):
            scopes[param] = frozenset(item for item in items if isinstance(item, str))
    return scopes
