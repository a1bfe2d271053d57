"""Continuation tokens of paged store queries (`DocumentStore.query_page`, docs/paging.md).

A token is opaque to callers: base64url of `{"s": state, "h": digest}`, where `state` is
the adapter's own resume point (SQLite: the sort key and id of the last row returned;
Cosmos: the SDK's continuation string) and `digest` a SHA-256 over the query the token
was issued for and the state. Decoding checks the digest against the query being run,
so a token that was truncated, garbled, edited or issued for another query (other
container, filters, partition, order, range or adapter) is refused with
`ContinuationError` (400) instead of resuming somewhere arbitrary.

The digest is unkeyed on purpose: it detects accidents and misuse, not forgery, and a
forged token gains nothing. It carries only a position; the filters, partition and
authorization of every page come from the request itself, so the worst a forged
position does is skip part of results the caller may read anyway (SQLite binds it as a
parameter; Cosmos validates its own tokens and answers 400, mapped to the same error).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from shared.errors import BadRequestError
from shared.store.port import Document

# longest token accepted: Cosmos continuation strings are a few hundred bytes
MAX_TOKEN_CHARS = 4096


class Page(NamedTuple):
    """One page of a paged query: at most `limit` documents in the query's order and the
    token of the next page (None when this page is the last)."""

    items: list[Document]
    continuation: str | None


class ContinuationError(BadRequestError, ValueError):
    """A continuation token this query did not issue (garbled, edited, truncated, too long,
    or from another query); answers 400 naming the `continuationToken` parameter."""

    def __init__(self, detail: str = "continuationToken is not one this query issued") -> None:
        super().__init__(detail, errors=[{"field": "continuationToken", "message": detail}])


def _digest(query: dict[str, Any], state: Any) -> str:
    text = json.dumps([query, state], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def seal(query: dict[str, Any], state: Any) -> str:
    """The token resuming `query` (a JSON-able description of it) at `state`."""
    body = json.dumps({"s": state, "h": _digest(query, state)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def unseal(query: dict[str, Any], token: str) -> Any:
    """The state `seal` put in `token` for this very `query`.

    Raises ContinuationError when the token is too long, not base64url JSON of the
    expected shape, or its digest does not match `query` and the state.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise ContinuationError()
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise ContinuationError() from None
    if not isinstance(body, dict) or set(body) != {"s", "h"} or body["h"] != _digest(query, body["s"]):
        raise ContinuationError()
    return body["s"]


def filtered_page(fetch: Callable[[int, str | None], Page], keep: Callable[[Document], bool], *,
                  limit: int, continuation: str | None, max_calls: int = 8) -> Page:
    """A page of the documents `keep` admits (e.g. those the caller may read), from a
    paged query `fetch(limit, continuation) -> Page`.

    Each call asks only for the documents still missing, so the token returned resumes
    right after the last document looked at, and no admitted one is skipped. At most
    `max_calls` store pages are read per call (bounded work per request): a caller who
    may read few documents can get a short or empty page with a token; only a None
    token means the end.
    """
    items: list[Document] = []
    token = continuation
    for _ in range(max_calls):
        page = fetch(limit - len(items), token)
        items += [doc for doc in page.items if keep(doc)]
        token = page.continuation
        if token is None or len(items) >= limit:
            break
    return Page(items, token)


def every_document(store: Any, container: str, *, page_size: int = 500, **query: Any) -> Iterator[Document]:
    """Every document of a `query_page` query (`query`: its filters, partition key, order
    and ranges), read a page at a time: each read is index-served and bounded, for
    callers that must visit them all (timers), instead of one unbounded sorted query."""
    token = None
    while True:
        page = store.query_page(container, limit=page_size, continuation=token, **query)
        yield from page.items
        if (token := page.continuation) is None:
            return
