"""Prometheus metrics of the gateway, served at `/metrics` (NFR-OPS-005).

`/metrics` answers only a scraper that sends the scrape token
(`Authorization: Bearer <token>`, compared in constant time; NFR-SEC-004): the token is
`MCPAAS_GATEWAY_METRICS_TOKEN`, or the file the first gateway creates in the data dir
(`shared.keyfiles.metrics_token`). Anyone else gets 401 problem+json. Server names and
tool names are in the series, so the page is not public (docs/entry-points.md says how
Prometheus and Azure Monitor send the token).

One process-wide registry (`METRICS`): request count and latency by server, JSON-RPC
method and tool; active sessions; child restarts; provisioning durations. Label values
come from the store's server names and the client's methods; tool names are cut to 64
characters and methods outside MCP's namespace are folded into `other`, so a client
cannot blow up the label space with junk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.wire.http import problem
from gateway.wire.jsonrpc import Message
from shared.asgi import header
from shared.auth.tokens import AuthenticationError
from shared.keyfiles import matches

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                    5, 10, 30)
_KNOWN_PREFIXES = ("initialize", "ping", "tools/", "resources/", "prompts/", "completion/",
                   "logging/", "notifications/", "sampling/", "elicitation/", "roots/", "tasks/")


@dataclass
class GatewayMetrics:
    """The gateway's collectors, on their own registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # labelled children by (server, method, tool, outcome): no more keys than the
        # registry holds series already
        self._series: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}
        self.requests = Counter("mcpaas_gateway_requests", "MCP requests relayed",
                                ["server", "method", "tool", "outcome"], registry=r)
        self.latency = Histogram("mcpaas_gateway_request_seconds",
                                 "Latency of relayed MCP requests, seconds",
                                 ["server", "method", "tool"], buckets=_LATENCY_BUCKETS,
                                 registry=r)
        self.active_sessions = Gauge("mcpaas_gateway_active_sessions", "Live MCP sessions",
                                     ["server"], registry=r)
        self.child_restarts = Counter("mcpaas_gateway_child_restarts",
                                      "Stdio children that exited unexpectedly", ["server"],
                                      registry=r)
        self.provisioning = Histogram("mcpaas_gateway_provisioning_seconds",
                                      "Just-in-time install durations, seconds",
                                      ["server", "outcome"], registry=r,
                                      buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))

    def observe(self, server: str, request: Message, seconds: float, outcome: str) -> None:
        """Count one request/response round trip (`outcome`: ok, error, refused)."""
        method, tool = labels_of(request)
        key = (server, method, tool, outcome)
        series = self._series.get(key)
        if series is None:  # `labels()` validates and locks on every call: once per key
            series = self._series[key] = (self.requests.labels(*key),
                                          self.latency.labels(server, method, tool))
        series[0].inc()
        series[1].observe(seconds)


def labels_of(request: Message) -> tuple[str, str]:
    """`(method, tool)` label values of a JSON-RPC request (tool only for tools/call)."""
    method = request.get("method")
    if not isinstance(method, str) or not method.startswith(_KNOWN_PREFIXES):
        return "other", ""
    tool = ""
    if method == "tools/call":
        name = (request.get("params") or {}).get("name")
        tool = name[:64] if isinstance(name, str) else ""
    return method[:64], tool


METRICS = GatewayMetrics()


class MetricsEndpoint:
    """`GET /metrics` as an ASGI app: the Prometheus text exposition format for a caller
    presenting `token` as a bearer token, 401 problem+json (with a `Bearer` challenge)
    for anyone else.

    Args:
        token: the scrape token (non-empty).
    """

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the metrics scrape token must not be empty")
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        scheme, _, presented = (header(request, "authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and matches(presented.strip(), self._token):
            response = Response(generate_latest(METRICS.registry), media_type=CONTENT_TYPE_LATEST)
        else:
            response = problem(AuthenticationError("/metrics needs the scrape token as a bearer token"),
                               request)
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        await response(scope, receive, send)
