"""Helpers for the ASGI (Starlette) services: devhost and the gateway."""

from __future__ import annotations

from typing import overload

from starlette.requests import Request

from shared.errors import PayloadTooLargeError

# scope key of the request's headers as a dict (built once per request)
_HEADERS_KEY = "mcpaas.headers"


@overload
def header(request: Request, name: str, default: str) -> str: ...
@overload
def header(request: Request, name: str, default: None = None) -> str | None: ...


def header(request: Request, name: str, default: str | None = None) -> str | None:
    """The value of request header `name` (lowercase; the first one when repeated).

    Starlette's `request.headers.get` scans the raw header list on every call; a hot
    path asks for a dozen headers per request, so they are decoded into a dict once
    (ASGI header names are lowercase already).
    """
    table = request.scope.get(_HEADERS_KEY)
    if table is None:
        table = {}
        for key, value in request.scope["headers"]:
            table.setdefault(key.decode("latin-1"), value.decode("latin-1"))
        request.scope[_HEADERS_KEY] = table
    return table.get(name, default)


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, never buffering more than `limit` bytes.

    Raises:
        PayloadTooLargeError: Content-Length or the streamed body exceeds `limit`.
    """
    declared = header(request, "content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # chunked bodies have no Content-Length
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
