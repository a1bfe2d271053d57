"""Gateway rate limits (FR-025): per caller, per caller and server, per caller, server
and tool, configured by `gateway_rate_limit_*` settings.

Storage is Redis (`redis_url`) when set, so every replica counts against the same
windows, else memory (one process). A request over a limit is answered 429 with
`Retry-After` and `X-RateLimit-*` (built by `shared.ratelimit`) and a JSON-RPC error
body; the hit is logged with the caller's identity by `shared.ratelimit` (NFR-SEC-007).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from shared.ratelimit import RateLimitDecision, RateLimiter
from shared.redis_auth import redis_options
from shared.settings import Settings

from gateway.wire.http import rpc_error

# JSON-RPC code of a rate-limited request (implementation-defined server error range).
RATE_LIMITED = -32029


def limiter_from_settings(settings: Settings) -> RateLimiter | None:
    """The gateway's limiter, or None when every limit is disabled.

    Raises ValueError for an unparsable limit string (at start, not per request).
    """
    limits = {"per_identity": settings.gateway_rate_limit_identity,
              "per_server": settings.gateway_rate_limit_server,
              "per_tool": settings.gateway_rate_limit_tool}
    if not any(limits.values()):
        return None
    storage = settings.redis_url or "memory://"
    options = redis_options(settings.redis_url, settings.redis_entra)
    return RateLimiter(storage, storage_options=options, **{scope: value or None for scope, value in limits.items()})


def too_many_requests(decision: RateLimitDecision, request_id: Any = None) -> Response:
    """The 429 answer of a denied `decision`."""
    return rpc_error(429, RATE_LIMITED,
                     f"Too Many Requests: {decision.scope} rate limit of {decision.limit} exceeded; "
                     f"retry after {decision.retry_after_s} s", request_id,
                     headers=decision.headers())
