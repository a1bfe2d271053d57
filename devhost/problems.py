"""RFC 9457 problem responses of devhost routes."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from shared.errors import PayloadTooLargeError

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An ``application/problem+json`` response ``{type, title, status, detail}``."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def too_large(exc: PayloadTooLargeError) -> JSONResponse:
    """The 413 problem for a body over the host limit."""
    return problem(413, "Payload Too Large", str(exc))
