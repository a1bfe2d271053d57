"""Who is calling: the authenticated principal every authorization decision uses."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field


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
    any). Carries no credential material, so it is safe to log.
    """

    subject: str
    name: str = ""
    kind: Literal["user", "service", "api_key", "anonymous"] = "user"
    roles: frozenset[Role] = Field(default_factory=frozenset)
    groups: frozenset[str] = Field(default_factory=frozenset)
    tenant: str | None = None
    servers: frozenset[str] | None = None

    def has_role(self, role: Role) -> bool:
        """True when the principal holds `role` itself (no hierarchy implied)."""
        return role in self.roles
