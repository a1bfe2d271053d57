"""Domain errors and their RFC 9457 problem-details form.

Every error the platform raises on purpose derives from `MCPaaSError`, which carries
the HTTP status it maps to. `problem_body` renders any of them as an
`application/problem+json` document (https://www.rfc-editor.org/rfc/rfc9457).
"""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


class MCPaaSError(Exception):
    """Base of deliberate errors; `status` is the HTTP status, `title` its short text."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class BadRequestError(MCPaaSError):
    """Input failed validation; `errors` lists `{"field": dotted.path, "message": ...}`."""

    status = 400
    title = "Bad Request"


class NotFoundError(MCPaaSError):
    """The addressed entity does not exist."""

    status = 404
    title = "Not Found"


class ConflictError(MCPaaSError):
    """The entity exists already, or a concurrent writer won (etag mismatch)."""

    status = 409
    title = "Conflict"


class PayloadTooLargeError(MCPaaSError):
    """The request body exceeds the configured limit."""

    status = 413
    title = "Content Too Large"


class UnprocessableError(MCPaaSError):
    """Well-formed input the platform cannot act on (e.g. no Kubernetes target)."""

    status = 422
    title = "Unprocessable Content"


def problem_body(error: MCPaaSError, instance: str | None = None) -> dict[str, Any]:
    """RFC 9457 body for `error`: type, title, status, detail, instance, extensions."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance:
        body["instance"] = instance
    body.update(error.extensions)
    return body


def validation_errors(exc: Any) -> list[dict[str, str]]:
    """Flatten a `pydantic.ValidationError` into `[{"field": "a.b", "message": ...}]`."""
    return [
        {"field": ".".join(str(part) for part in err["loc"]) or "(body)",
         "message": err["msg"].removeprefix("Value error, ")}
        for err in exc.errors()
    ]
