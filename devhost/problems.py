"""RFC 9457 problem responses and bounded request-body reading shared by devhost routes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit."""


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An ``application/problem+json`` response ``{type, title, status, detail}``."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body without buffering more than ``limit`` bytes.

    Raises:
        BodyTooLarge: Content-Length or the streamed size exceeds ``limit``.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(exc: BodyTooLarge) -> JSONResponse:
    """The 413 problem for :class:`BodyTooLarge`."""
    return problem(413, "Payload Too Large", str(exc))
