"""Errors the CLI reports to the user instead of a traceback, each saying what to do next.

Each carries the process exit code it maps to: 1 for failures of the platform or of
the operation, 2 for bad input caught before anything was sent (the Unix usage code).
The hints follow issue 13 item 5: nothing listening names the URL and how to start the
platform; 401 says how to log in; 403 names the roles that grant the refused permission
when the problem detail names one (triggers/security.py: ``"<permission> denied: ..."``).
"""

from __future__ import annotations

import re
from typing import Any

from shared.auth.principal import Principal, Role
from shared.auth.rbac import Permission, authorize

LOGIN_HINT = ("log in with `mcpaas login --user NAME --role Developer` on the local platform (`make run` "
              "saved an Admin token in .mcpaas/cli-token), `mcpaas login --entra` for an Entra ID-secured "
              "control plane, or pass a token or API key with --token / MCPAAS_TOKEN")
_DENIED = re.compile(r"^(?P<permission>[a-z]+\.[a-z]+) denied\b")


class CliError(Exception):
    """A failure to print as one message (plus optional field errors) and exit."""

    exit_code = 1

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class SpecError(CliError):
    """The spec given to `deploy` is unreadable or fails local validation."""

    exit_code = 2


class ApiError(CliError):
    """The control plane answered 4xx/5xx; fields mirror its RFC 9457 problem body.

    `sent_credential` says whether the request carried one, so a 401 can tell "log in"
    from "log in again"."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[dict[str, str]] | None = None,
                 body: dict[str, Any] | None = None, sent_credential: bool = True) -> None:
        message = f"{title}: {detail}" if detail else title
        advice = hint(status, detail, sent_credential)
        super().__init__(f"{message}. {advice}" if advice else message, errors)
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body or {}


class UnreachableError(CliError):
    """Nothing answers at the control plane URL (connection refused, no route, DNS)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"control plane not reachable at {url} (nothing answers there): start the local "
                         "platform with `make run` (or `mcpaas up`) in another terminal, or point --api-url / "
                         "MCPAAS_API_URL at your control plane")
        self.url = url


class SlowError(CliError):
    """The control plane accepted the connection but sent no answer in time."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(f"{url} accepted the connection but sent no answer within {seconds:g} s: is it the "
                         "control plane, and is it still starting? Retry, or check its log (locally: "
                         ".mcpaas/logs/controlplane.log)")
        self.url = url


def hint(status: int, detail: str, sent_credential: bool = True) -> str:
    """What to do about an HTTP `status` answer with problem `detail` ("" when nothing useful)."""
    if status == 401:
        return ("Your credential was refused (expired or not for this control plane): " if sent_credential
                else "No credential was sent: ") + LOGIN_HINT
    if status == 403:
        if "not scoped to server" in detail:
            return "Your API key is limited to other servers; use a key or token that covers this one"
        match = _DENIED.match(detail)
        permission = match.group("permission") if match else None
        if permission in {p.value for p in Permission}:
            return needed_roles(Permission(permission))
        return "Your role or team may not do this; ask an Admin, or the server's owner team for a share"
    if status == 409:
        return "It changed, or exists, already: look at it again (`mcpaas status`), then retry"
    if status >= 500:
        return "The control plane failed; its log says why (locally: .mcpaas/logs/controlplane.log)"
    return ""


def needed_roles(permission: Permission) -> str:
    """Who may do `permission`, in words: the roles that grant it anywhere, those that grant
    it on their own team's servers, and shares (decided by `shared.auth.rbac.authorize`)."""
    anywhere = [role.value for role in Role
                if authorize(Principal(subject="?", roles=frozenset({role})), permission,
                             server="s", owner_team="other").allowed]
    own_team = [role.value for role in Role if role.value not in anywhere
                and authorize(Principal(subject="?", roles=frozenset({role}), groups=frozenset({"t"})),
                              permission, server="s", owner_team="t").allowed]
    text = f"{permission.value} needs role {' or '.join(anywhere)}"
    if own_team:
        text += f", or {' or '.join(own_team)} in the server's owner team, or a share of the server"
    return text + "; ask an Admin for the role"
