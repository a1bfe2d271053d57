"""Errors the CLI reports to the user instead of a traceback.

Each carries the process exit code it maps to: 1 for failures of the platform or of
the operation, 2 for bad input caught before anything was sent (the Unix usage code).
"""

from __future__ import annotations

from typing import Any


# what to do next, by HTTP status of the control plane's answer
HINTS = {401: " (log in: `mcpaas login --user NAME --role Developer` for the local platform, or pass an "
              "Entra access token with --token / MCPAAS_TOKEN)",
         403: " (your role or team may not do this; ask an Admin or the server's owner team for a share)"}


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
    """The control plane answered 4xx/5xx; fields mirror its RFC 9457 problem body."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[dict[str, str]] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        message = f"{title}: {detail}" if detail else title
        super().__init__(message + HINTS.get(status, ""), errors)
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body or {}


class UnreachableError(CliError):
    """Nothing answers at the control plane URL."""

    def __init__(self, url: str) -> None:
        super().__init__(f"control plane not reachable at {url}. Start the local platform with `mcpaas up` "
                         "(or `make run`) in another terminal, or point --api-url / MCPAAS_API_URL at yours")
        self.url = url
