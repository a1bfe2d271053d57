"""Authentication and authorization of the control-plane REST API (FR-006, FR-018).

Every route is decorated with `authenticated` (any valid caller; the function receives
`principal`) or `requires(permission)` (also authorized at once, for permissions that
are not about one server). Server-scoped checks run in the trigger after it has loaded
the server, through `check`, which knows the owner team and the shares.

A missing or invalid credential answers 401 problem+json with `WWW-Authenticate: Bearer`
(RFC 6750 §3); a denial answers 403. Every decision on a write, allowed or denied, and
every denied read, is recorded in the audit trail with the caller's subject.
"""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from typing import Any

import azure.functions as func

from shared.auth.factory import authenticator_from_settings
from shared.auth.principal import Principal
from shared.auth.rbac import Decision, ForbiddenError, Permission, Share, authorize
from shared.auth.tokens import AuthenticationError
from shared import servers
from shared.models import AuditEvent, AuditResult, Server
from shared.settings import get_settings
from shared.telemetry import current_trace_id
from shared.store import get_store
from triggers.problems import Handler, problem_response

log = logging.getLogger("mcpaas.triggers.security")

# Permissions that change something: their allowed decisions are audited too.
WRITES = frozenset(Permission) - {Permission.SERVER_READ, Permission.AUDIT_READ, Permission.INVOCATIONS_READ}


def authenticate(req: func.HttpRequest) -> Principal:
    """The caller of `req` (`Authorization: Bearer <JWT or API key>` or `X-API-Key`).

    Raises AuthenticationError (401) when no valid credential is present.
    """
    authenticator = authenticator_from_settings(get_settings(), get_store())
    return authenticator.authenticate(req.headers.get("Authorization"), req.headers.get("X-API-Key"))


def record_decision(principal: Principal | str, action: str, entity: str, result: AuditResult, reason: str,
                    diff: dict[str, dict[str, Any]] | None = None) -> None:
    """Append one audit event (`result`: ``allowed``, ``denied``, ``refused`` or
    ``succeeded``) for `entity`, with what a write changed (`diff`, never a secret) and
    the current trace id."""
    actor = principal.subject if isinstance(principal, Principal) else principal
    event = AuditEvent(id=uuid.uuid4().hex, actor=actor, action=action, entity=entity, result=result,
                       detail=reason, diff=diff, trace_id=current_trace_id())
    get_store().create("audit", event.model_dump(mode="json"))


def check(principal: Principal, permission: Permission, *, server: str | None = None, owner_team: str = "",
          shares: list[Share] | None = None, entity: str | None = None) -> Decision:
    """Authorize `principal` for `permission` (on `server`, owned by `owner_team`, shared by `shares`).

    Audits the decision (allows only for writes) under `entity` (default: the server,
    else the permission's noun). Raises ForbiddenError (403) on a denial.
    """
    decision = authorize(principal, permission, server=server, owner_team=owner_team, shares=shares)
    target = entity or server or permission.value.split(".")[0]
    if permission in WRITES or not decision.allowed:
        record_decision(principal, permission.value, target, "allowed" if decision.allowed else "denied",
                        decision.reason)
    if not decision.allowed:
        raise ForbiddenError(f"{permission.value} denied: {decision.reason}")
    return decision


def check_server(principal: Principal, permission: Permission, name: str) -> Server:
    """Load server `name` and `check` `permission` against its owner team and shares.

    Returns the server. Raises NotFoundError (404) for an unknown server, ForbiddenError (403).
    """
    server, _ = servers.load_server(get_store(), name)
    check(principal, permission, server=name, owner_team=server.spec.owner_team, shares=server.shares)
    return server


def check_invocations(principal: Principal, server: str | None) -> None:
    """Authorize reading invocation records (FR-022), of `server` or of every server.

    Callers whose roles grant invocations.read everywhere (Operator, Admin: the roles with
    audit.read) read every server's records; anyone else (a Developer of the owning team,
    or a share of invocations.read) only one server's, named by `server`. A credential
    scoped to servers must name one of them. Raises ForbiddenError (403, audited) or
    NotFoundError (404) for an unknown server when it is checked against its owner.
    """
    if server is None and principal.servers is not None:
        decision = Decision(False, "credential is scoped to servers: name one with server=")
    else:
        decision = authorize(principal, Permission.INVOCATIONS_READ, server=server)
    if decision.allowed:
        return
    if server is not None:
        check_server(principal, Permission.INVOCATIONS_READ, server)
        return
    record_decision(principal, Permission.INVOCATIONS_READ.value, "invocations", "denied", decision.reason)
    raise ForbiddenError(f"invocations.read denied: {decision.reason}; "
                         "name a server your team owns with server=")


def unauthorized(error: AuthenticationError, req: func.HttpRequest) -> func.HttpResponse:
    """The 401 problem response with the `WWW-Authenticate` challenge."""
    response = problem_response(error, instance=req.url)
    response.headers["WWW-Authenticate"] = 'Bearer realm="mcpaas", error="invalid_token"'
    return response


def _without_principal(handler: Handler) -> inspect.Signature:
    # The Functions worker binds parameters by name: hide `principal`, which the
    # decorator supplies, so the host sees only the trigger and its bindings.
    signature = inspect.signature(handler)
    return signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "principal"])


def _decorate(handler: Handler, permission: Permission | None) -> Handler:
    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        req = kwargs.get("req") or args[0]
        try:
            principal = authenticate(req)
        except AuthenticationError as error:
            log.info("401 for %s %s: %s", req.method, req.url.split("?")[0], error.detail)
            return unauthorized(error, req)
        if permission is not None:
            check(principal, permission)
        return await handler(*args, principal=principal, **kwargs)

    wrapper.__signature__ = _without_principal(handler)  # type: ignore[attr-defined]
    return wrapper


def authenticated(handler: Handler) -> Handler:
    """Decorate a trigger (below `problem_handler`) so it runs only for a valid caller,
    passed as the keyword argument `principal`; 401 problem+json otherwise."""
    return _decorate(handler, None)


def requires(permission: Permission):
    """Like `authenticated`, and also authorize `permission` (not server-scoped) first:
    403 problem+json (audited) when the caller's roles do not grant it."""
    return functools.partial(_decorate, permission=permission)
