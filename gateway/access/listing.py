"""Per-tool policy on proxied `tools/list` answers (`remote` and `container` servers).

`gateway.access.policy.GuardedSession` filters the answers of stdio children; proxied servers
answer over HTTP, so `gateway.upstreams.proxy` rewrites their `tools/list` responses here:
a JSON body (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#sending-messages-to-the-server)
is read whole and filtered; an SSE stream (https://html.spec.whatwg.org/multipage/server-sent-events.html)
is cut into events, and each event whose `data` is the JSON-RPC response to a pending
`tools/list` is filtered. Once every pending listing has been answered the rest of the
stream is relayed chunk by chunk again, unbuffered. Traffic of any other request never
comes here.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from gateway.wire.jsonrpc import id_key, is_response
from gateway.access.policy import ToolPredicate, filter_tools

# An SSE event ends at a blank line; all three line endings are legal.
_EVENT_END = re.compile(r"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(r"\r\n|\n|\r")


def listing_ids(body: bytes) -> set[Any]:
    """`id_key`s of the `tools/list` requests in a JSON-RPC POST body (single or batch);
    empty for anything else, including a body that is not JSON."""
    try:
        payload = json.loads(body)
    except ValueError:
        return set()
    items = payload if isinstance(payload, list) else [payload]
    return {id_key(item["id"]) for item in items
            if isinstance(item, dict) and item.get("method") == "tools/list" and "id" in item}


def _filtered(message: Any, pending: set[Any], allows: ToolPredicate) -> Any:
    """`message` (a response or a batch of them) with pending listings filtered; those
    ids leave `pending`."""
    if isinstance(message, list):
        return [_filtered(item, pending, allows) for item in message]
    if isinstance(message, dict) and is_response(message) and id_key(message.get("id")) in pending:
        pending.discard(id_key(message.get("id")))
        return filter_tools(message, allows)
    return message


def filter_json(body: bytes, pending: set[Any], allows: ToolPredicate) -> bytes:
    """A JSON response body with the `tools/list` results of `pending` filtered; a body
    that is not JSON comes back unchanged."""
    try:
        message = json.loads(body)
    except ValueError:
        return body
    return json.dumps(_filtered(message, pending, allows), separators=(",", ":")).encode()


def _filter_event(event: str, pending: set[Any], allows: ToolPredicate) -> str:
    lines = _LINE.split(event)
    data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
    try:
        message = json.loads(data)
    except ValueError:
        return event  # not JSON (or no data): not a response to filter
    before = len(pending)
    filtered = _filtered(message, pending, allows)
    if len(pending) == before:
        return event  # untouched events keep their exact bytes
    others = [line for line in lines if not line.startswith("data:")]
    return "\n".join([*others, "data: " + json.dumps(filtered, separators=(",", ":"))])


async def filter_sse(chunks: AsyncIterator[bytes], pending: set[Any],
                     allows: ToolPredicate) -> AsyncIterator[bytes]:
    """Relay an SSE body, filtering the events that answer `pending` listings.

    Events are held only until complete (a blank line); after the last pending listing
    is answered, chunks pass through as they arrive.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    async for chunk in chunks:
        if not pending:
            yield chunk
            continue
        buffer += decoder.decode(chunk)
        out: list[str] = []
        while pending and (end := _EVENT_END.search(buffer)) is not None:
            out.append(_filter_event(buffer[:end.start()], pending, allows) + "\n\n")
            buffer = buffer[end.end():]
        if not pending:
            out.append(buffer + decoder.decode(b"", final=True))
            buffer = ""
        if out:
            yield "".join(out).encode()
    if buffer:
        yield (buffer + decoder.decode(b"", final=True)).encode()


async def _filter_whole(chunks: AsyncIterator[bytes], pending: set[Any],
                        allows: ToolPredicate) -> AsyncIterator[bytes]:
    # a JSON body is one message: it can only be filtered once complete
    body = b"".join([chunk async for chunk in chunks])
    yield filter_json(body, pending, allows)


def filter_listing(content_type: str, chunks: AsyncIterator[bytes], pending: set[Any],
                   allows: ToolPredicate) -> AsyncIterator[bytes]:
    """The response body `chunks` with the answers to `pending` `tools/list` requests
    reduced to the tools `allows`; by `content_type`: SSE per event, JSON whole, any
    other type unchanged."""
    media = content_type.split(";")[0].strip().lower()
    if media == "text/event-stream":
        return filter_sse(chunks, pending, allows)
    if media == "application/json":
        return _filter_whole(chunks, pending, allows)
    return chunks
