"""HTTP response helpers for triggers: JSON bodies and RFC 9457 problem details.

`problem_handler` turns the platform's deliberate errors (`shared.errors.MCPaaSError`)
into `application/problem+json` responses, so every trigger answers errors alike.
https://www.rfc-editor.org/rfc/rfc9457
"""

from __future__ import annotations

import functools
import json
from typing import Any, Awaitable, Callable

import azure.functions as func

from shared.errors import PROBLEM_JSON, MCPaaSError, problem_body

Handler = Callable[..., Awaitable[func.HttpResponse]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None,
                  mimetype: str = "application/json") -> func.HttpResponse:
    """An HttpResponse carrying `body` serialized as JSON."""
    return func.HttpResponse(json.dumps(body), status_code=status, headers=headers or {},
                             mimetype=mimetype, charset="utf-8")


def problem_response(error: MCPaaSError, instance: str | None = None) -> func.HttpResponse:
    """The problem+json response for `error` (status from the error class)."""
    return json_response(problem_body(error, instance), status=error.status, mimetype=PROBLEM_JSON)


def problem_handler(handler: Handler) -> Handler:
    """Decorate an async HTTP trigger so MCPaaSError becomes problem+json.

    Keeps the wrapped signature (the Functions worker binds parameters by name).
    Other exceptions propagate: the host answers 500 and logs them.
    """

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            return await handler(*args, **kwargs)
        except MCPaaSError as error:
            req = kwargs.get("req") or (args[0] if args else None)
            return problem_response(error, instance=getattr(req, "url", None))

    return wrapper
