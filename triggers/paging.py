"""Paging of the REST list routes (docs/paging.md, issue 15).

Every list answers `{"items": [...], "continuationToken": "..." | null}` and takes
`?limit=` (1 to the route's maximum, default the route's default) and
`?continuationToken=` (the token of the previous page, unchanged). A page may hold fewer
than `limit` items while more remain; only a null token means the last page. A limit
out of range, or a token the same query did not issue (garbled, edited, too long, or
from other filters), answers 400 problem+json naming the parameter.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import azure.functions as func
from pydantic import BaseModel

from shared.errors import BadRequestError
from shared.store.paging import MAX_TOKEN_CHARS, ContinuationError
from triggers.problems import json_response

DEFAULT_LIMIT = 100
MAX_LIMIT = 500

ModelT = TypeVar("ModelT", bound=BaseModel)


class _Page(BaseModel, Generic[ModelT]):
    items: list[ModelT]
    continuationToken: str | None  # noqa: N815 (the wire name)


def page_params(req: func.HttpRequest, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT,
                legacy_cursor: bool = False) -> tuple[int, str | None]:
    """`(limit, continuationToken)` of `req`; `legacy_cursor` also reads the token from
    `cursor` (what the audit routes took before issue 15).

    Raises BadRequestError (400) for a limit that is not an integer in 1..`maximum`, and
    ContinuationError (400) for a token longer than any the store issues.
    """
    text = req.params.get("limit")
    if text is not None and not (text.isascii() and text.isdigit() and 1 <= int(text) <= maximum):
        raise BadRequestError("bad query parameter limit",
                              errors=[{"field": "limit", "message": f"expected an integer from 1 to {maximum}"}])
    token = req.params.get("continuationToken") or (req.params.get("cursor") if legacy_cursor else None)
    if token and len(token) > MAX_TOKEN_CHARS:
        raise ContinuationError()
    return (int(text) if text is not None else default), token or None


def page_response(items: list[Any], continuation: str | None, **fields: Any) -> func.HttpResponse:
    """The 200 JSON answer of one page: `fields`, then `items` and `continuationToken`."""
    return json_response({**fields, "items": items, "continuationToken": continuation})


def model_page_response(model: type[BaseModel], docs: list[dict[str, Any]],
                        continuation: str | None) -> func.HttpResponse:
    """The 200 JSON answer of one page of stored documents, each validated as `model`:
    validated and serialized by pydantic in one pass, about three times faster than
    building every item's dict and encoding them again (a page of 100 servers)."""
    page = _Page[model].model_validate({"items": docs, "continuationToken": continuation})  # type: ignore[valid-type]
    return func.HttpResponse(page.model_dump_json(), status_code=200, mimetype="application/json", charset="utf-8")
