"""Role-based access control for the control plane (FR-006) with ownership and sharing (FR-018).

Permission matrix (✓ = anywhere, team = servers of the caller's own team or shared
with the caller):

| permission      | Reader | Developer | Operator | Admin |
|-----------------|--------|-----------|----------|-------|
| server.read     | ✓      | ✓         | ✓        | ✓     |
| server.create   |        | team      | ✓        | ✓     |
| server.update   |        | team      | ✓        | ✓     |
| server.delete   |        | team      | ✓        | ✓     |
| server.rollback |        | team      | ✓        | ✓     |
| audit.read      |        |           | ✓        | ✓     |
| invocations.read|        | team      | ✓        | ✓     |
| keys.manage     |        |           |          | ✓     |
| shares.manage   |        | team      | ✓        | ✓     |
| platform.manage |        |           |          | ✓     |
| feedback.triage |        |           | ✓        | ✓     |

A caller's teams are its `groups`. A share grants named permissions on one server to
a user (subject), a role or a group. An API key scoped to servers is denied others.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.auth.principal import Principal, Role
from shared.errors import MCPaaSError


class Permission(str, Enum):
    """An action on the control plane."""

    SERVER_READ = "server.read"
    SERVER_CREATE = "server.create"
    SERVER_UPDATE = "server.update"
    SERVER_DELETE = "server.delete"
    SERVER_ROLLBACK = "server.rollback"
    AUDIT_READ = "audit.read"
    # who called a server's tools (FR-022): every server with audit.read, the owning team's
    # Developers (and shares) for their own servers
    INVOCATIONS_READ = "invocations.read"
    KEYS_MANAGE = "keys.manage"
    SHARES_MANAGE = "shares.manage"
    PLATFORM_MANAGE = "platform.manage"  # provision the Azure control plane (POST /api/controlplane)
    FEEDBACK_TRIAGE = "feedback.triage"  # set a feedback entry's status (FR-011, PATCH /api/feedback/{id})


_TEAM_SCOPED = {Permission.SERVER_CREATE, Permission.SERVER_UPDATE, Permission.SERVER_DELETE,
                Permission.SERVER_ROLLBACK, Permission.SHARES_MANAGE, Permission.INVOCATIONS_READ}
_ANYWHERE: dict[Role, set[Permission]] = {
    Role.READER: {Permission.SERVER_READ},
    Role.DEVELOPER: {Permission.SERVER_READ},
    Role.OPERATOR: {Permission.SERVER_READ, Permission.AUDIT_READ, Permission.FEEDBACK_TRIAGE} | _TEAM_SCOPED,
    Role.ADMIN: set(Permission),
}
_TEAM_ONLY: dict[Role, set[Permission]] = {Role.DEVELOPER: _TEAM_SCOPED}


class Share(BaseModel):
    """A grant of `permissions` on one server to a user, role or group."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["user", "role", "group"]
    value: str = Field(min_length=1, max_length=200)
    permissions: list[Permission] = Field(min_length=1, max_length=len(Permission))


class ForbiddenError(MCPaaSError):
    """An authenticated caller is not allowed the action (403); `detail` gives the reason."""

    status = 403
    title = "Forbidden"


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorization check, with a reason fit for the audit trail."""

    allowed: bool
    reason: str


def _shared_with(principal: Principal, shares: list[Share], permission: Permission) -> bool:
    for share in shares:
        if permission not in share.permissions:
            continue
        if (share.kind == "user" and share.value == principal.subject
                or share.kind == "role" and share.value in {role.value for role in principal.roles}
                or share.kind == "group" and share.value in principal.groups):
            return True
    return False


def authorize(principal: Principal, permission: Permission, *, server: str | None = None,
              owner_team: str = "", shares: list[Share] | None = None) -> Decision:
    """Decide whether `principal` may do `permission` (on `server`, owned by `owner_team`).

    Never raises; callers turn a denial into 403 and audit the decision.
    """
    if server is not None and principal.servers is not None and server not in principal.servers:
        return Decision(False, f"credential is not scoped to server '{server}'")
    for role in principal.roles:
        if permission in _ANYWHERE[role]:
            return Decision(True, f"role {role.value} grants {permission.value}")
    team_roles = [role for role in principal.roles if permission in _TEAM_ONLY.get(role, set())]
    if team_roles and owner_team and owner_team in principal.groups:
        return Decision(True, f"{team_roles[0].value} of owning team '{owner_team}'")
    if team_roles and permission is Permission.SERVER_CREATE and not owner_team:
        return Decision(True, f"{team_roles[0].value} may create unowned servers")
    if _shared_with(principal, shares or [], permission):
        return Decision(True, f"server shared with caller for {permission.value}")
    return Decision(False, f"no role, team ownership or share grants {permission.value}")
