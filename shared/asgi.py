"""Helpers for the ASGI (Starlette) services: devhost and the gateway."""

from __future__ import annotations

from starlette.requests import Request

from shared.errors import PayloadTooLargeError


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, never buffering more than `limit` bytes.

    Raises:
        PayloadTooLargeError: Content-Length or the streamed body exceeds `limit`.
    """
    declared = request.headers.get("content-length")
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
