"""JSON-RPC 2.0 message helpers for the gateway (https://www.jsonrpc.org/specification).

Messages are plain dicts as decoded by `json`; the gateway relays them and only looks
at the envelope (`id`, `method`, `result`/`error`), never at MCP payloads.
"""

from __future__ import annotations

import json
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
# MCP SDKs use -32001 for "session not found"; it is in the implementation-defined range.
SESSION_NOT_FOUND = -32001

Message = dict[str, Any]


class RawMessage(dict):
    """A message as a peer wrote it, keeping that JSON text (`raw`, UTF-8 bytes): relayed
    unchanged, it needs no re-encoding (a large tool result costs the gateway no second
    pass). Any changed copy (`{**message, ...}`) is a plain dict and is encoded anew;
    nothing mutates a message in place."""

    __slots__ = ("raw",)

    def __init__(self, decoded: dict[str, Any], raw: bytes) -> None:
        super().__init__(decoded)
        self.raw = raw


def encoded(message: Message) -> bytes:
    """The JSON text of `message`: its original text when it is an unchanged RawMessage."""
    raw = getattr(message, "raw", None)
    return raw if raw is not None else dumps(message).encode()


class MessageError(ValueError):
    """A body that is not one acceptable JSON-RPC message; `code` is the JSON-RPC code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_payload(body: bytes) -> Message | list[Message]:
    """Decode an HTTP body: one JSON-RPC message, or a non-empty batch array of them.

    Raises:
        MessageError: code -32700 for invalid JSON, -32600 for an empty array or
            anything that is not a JSON-RPC 2.0 request, notification or response.
    """
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(PARSE_ERROR, f"Parse error: {exc}") from None
    if isinstance(value, list):
        if not value:
            raise MessageError(INVALID_REQUEST, "Invalid Request: empty batch")
        return [validate_message(item) for item in value]
    return validate_message(value)


def parse_message(body: bytes) -> Message:
    """Decode exactly one JSON-RPC message. Raises MessageError (-32600 for a batch)."""
    value = parse_payload(body)
    if isinstance(value, list):
        raise MessageError(INVALID_REQUEST, "Invalid Request: batch arrays are not supported")
    return value


def validate_message(value: Any) -> Message:
    """Check one decoded value is a JSON-RPC 2.0 request, notification or response.

    Raises MessageError (-32600) otherwise.
    """
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0":
        raise MessageError(INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object")
    if "method" in value:
        if not isinstance(value["method"], str):
            raise MessageError(INVALID_REQUEST, "Invalid Request: 'method' must be a string")
        if "id" in value and not _valid_id(value["id"]):
            raise MessageError(INVALID_REQUEST, "Invalid Request: 'id' must be a string or number")
        return value
    if "id" in value and ("result" in value or "error" in value):
        return value
    raise MessageError(INVALID_REQUEST, "Invalid Request: not a request, notification or response")


def _valid_id(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def is_request(message: Message) -> bool:
    """True for a request (has `method` and `id`)."""
    return "method" in message and "id" in message


def is_notification(message: Message) -> bool:
    """True for a notification (has `method`, no `id`)."""
    return "method" in message and "id" not in message


def is_response(message: Message) -> bool:
    """True for a response or error response (has `id`, no `method`)."""
    return "method" not in message and "id" in message


def id_key(request_id: Any) -> str:
    """Map key for a JSON-RPC id; keeps `1`, `1.0` and `"1"` apart, as JSON-RPC requires.
    (A type tag and `repr`, not `json.dumps`: this runs several times per relayed call.)"""
    if isinstance(request_id, str):
        return "s" + request_id
    return "n" + repr(request_id)


def error_response(request_id: Any, code: int, message: str) -> Message:
    """A JSON-RPC error response object (`id` may be None for unattributable errors)."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


# One encoder for every message: `json.dumps` with non-default options builds a new
# encoder on each call, and every relayed message is encoded at least once.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(message: Message) -> str:
    """Compact single-line JSON; `json` escapes newlines in strings, so it is one line."""
    return _ENCODER.encode(message)
