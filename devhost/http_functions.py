"""Serve the HTTP-triggered functions of a FunctionApp with the real azure.functions types.

Routes come from each function's ``httpTrigger`` binding (``route``, ``methods``) and are
served under ``/api`` like the Functions host's default ``routePrefix``. Route templates
follow ASP.NET Core syntax: ``{name}``, ``{name:constraint}``, ``{name?}`` and
``{*rest}`` (https://learn.microsoft.com/aspnet/core/fundamentals/routing#route-templates).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from opentelemetry import trace
from starlette.requests import Request
from starlette.responses import Response

from devhost.indexing import list_functions
from devhost.problems import problem, too_large
from shared.asgi import read_limited_body
from shared.errors import PayloadTooLargeError
from shared.telemetry import extract_context

log = logging.getLogger("devhost.http")
_tracer = trace.get_tracer("mcpaas.devhost")

ROUTE_PREFIX = "/api"
_CONSTRAINTS = {"int": r"-?\d+", "long": r"-?\d+", "alpha": r"[A-Za-z]+", "bool": r"(?:true|false)",
                "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}"}
_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)((?::[^{}?]+)*)(\??)\}")


@dataclass
class HttpRoute:
    """One HTTP-triggered function.

    ``methods`` is None when every method is accepted; ``clients`` are the names of
    ``durableClient`` bindings, which receive the client binding JSON string.
    """

    function_name: str
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None
    user_function: Callable[..., Any]
    trigger_name: str
    clients: list[str] = field(default_factory=list)

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: literal segments first, catch-alls last (like ASP.NET routing)."""
        segments = [s for s in self.template.split("/") if s]
        literal = sum(1 for s in segments if "{" not in s)
        return (-int("{*" in self.template), literal)


def compile_route(template: str) -> re.Pattern[str]:
    """Compile a Functions route template into a regex over the path after ``/api/``."""
    parts: list[str] = []
    for index, segment in enumerate(s for s in template.strip("/").split("/") if s):
        sep = "/" if index else ""
        whole = _PARAM.fullmatch(segment)
        if whole and whole.group(4) == "?":  # an optional segment takes its slash along
            parts.append(f"(?:{sep}{_param_regex(whole)})?")
            continue
        body, pos = [], 0
        for m in _PARAM.finditer(segment):
            body.append(re.escape(segment[pos:m.start()]))
            body.append(_param_regex(m))
            pos = m.end()
        body.append(re.escape(segment[pos:]))
        parts.append(sep + "".join(body))
    return re.compile("^" + "".join(parts) + "/?$", re.IGNORECASE)


def _param_regex(m: re.Match[str]) -> str:
    catch_all, name, constraints = m.group(1), m.group(2), m.group(3)
    if catch_all:
        return f"(?P<{name}>.*)"
    inner = "[^/]+"
    for constraint in filter(None, constraints.split(":")):
        inner = _CONSTRAINTS.get(constraint.split("(")[0].lower(), inner)
    return f"(?P<{name}>{inner})"


def collect_http_routes(app: func.FunctionApp) -> list[HttpRoute]:
    """Every HTTP-triggered function of ``app``, most specific route first."""
    routes = []
    for fn in list_functions(app):
        trigger = fn.get_trigger()
        if trigger is None or trigger.type != "httpTrigger":
            continue
        template = getattr(trigger, "route", None) or fn.get_function_name()
        methods = getattr(trigger, "methods", None)
        routes.append(HttpRoute(
            function_name=fn.get_function_name(), template=template,
            pattern=compile_route(template),
            methods=frozenset(str(getattr(m, "value", m)).upper() for m in methods)
            if methods else None,
            user_function=fn.get_user_function(), trigger_name=trigger.name,
            clients=[b.name for b in fn.get_bindings() if b.type == "durableClient"]))
    routes.sort(key=lambda r: r.specificity, reverse=True)
    return routes


class HttpFunctionDispatcher:
    """Starlette endpoint (:meth:`dispatch`) serving ``/api/...`` from a list of :class:`HttpRoute`.

    Args:
        routes: from :func:`collect_http_routes`.
        client_json: returns the durable client binding JSON string.
        max_body_bytes: larger bodies get 413 problem+json.
    """

    def __init__(self, routes: list[HttpRoute], client_json: Callable[[], str],
                 max_body_bytes: int) -> None:
        self._routes = routes
        self._client_json = client_json
        self._limit = max_body_bytes

    async def dispatch(self, request: Request) -> Response:
        """Match, invoke the user function and convert its HttpResponse."""
        path = request.url.path[len(ROUTE_PREFIX):].lstrip("/")
        matched = [(r, m) for r in self._routes if (m := r.pattern.match(path))]
        if not matched:
            return problem(404, "Not Found", f"no function serves {request.url.path}")
        allowed = [(r, m) for r, m in matched if r.methods is None
                   or request.method in r.methods]
        if not allowed:
            methods = sorted({x for r, _ in matched for x in (r.methods or ())})
            resp = problem(405, "Method Not Allowed",
                           f"{request.method} is not allowed on {request.url.path}")
            resp.headers["Allow"] = ", ".join(methods)
            return resp
        route, match = allowed[0]
        try:
            body = await read_limited_body(request, self._limit)
        except PayloadTooLargeError as exc:
            return too_large(exc)
        params = {k: v for k, v in match.groupdict().items() if v is not None}
        req = func.HttpRequest(
            method=request.method, url=str(request.url), headers=dict(request.headers),
            params=dict(request.query_params), route_params=params, body=body)
        try:
            # a server span per request, continuing the caller's trace (W3C traceparent)
            with _tracer.start_as_current_span(f"{request.method} /api/{route.template}",
                                               context=extract_context(request.headers),
                                               kind=trace.SpanKind.SERVER):
                return to_starlette(await self._invoke(route, req))
        except Exception:
            log.exception("function %s raised", route.function_name)
            return problem(500, "Internal Server Error",
                           f"function {route.function_name} raised an exception")

    async def _invoke(self, route: HttpRoute, req: func.HttpRequest) -> Any:
        kwargs: dict[str, Any] = {route.trigger_name: req}
        for name in route.clients:
            kwargs[name] = self._client_json()
        fn = route.user_function
        if "context" in inspect.signature(fn).parameters and "context" not in kwargs:
            kwargs["context"] = InvocationContext(route.function_name)
        if inspect.iscoroutinefunction(fn):
            return await fn(**kwargs)
        # Sync functions may block (I/O); keep the event loop serving other requests.
        return await asyncio.to_thread(fn, **kwargs)


@dataclass
class InvocationContext:
    """Minimal stand-in for ``azure.functions.Context`` passed as ``context=``."""

    function_name: str
    invocation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_directory: str = "."
    trace_context: Any = None
    retry_context: Any = None


def to_starlette(result: Any) -> Response:
    """Convert a function's return value (HttpResponse, str, bytes or None)."""
    if result is None:
        return Response(status_code=204)
    if isinstance(result, (str, bytes)):
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"HTTP function returned {type(result).__name__}, not HttpResponse")
    headers = {k: v for k, v in result.headers.items()}
    if not any(k.lower() == "content-type" for k in headers) and result.mimetype:
        charset = f"; charset={result.charset}" if result.charset else ""
        headers["Content-Type"] = f"{result.mimetype}{charset}"
    return Response(content=result.get_body(), status_code=result.status_code, headers=headers)

