"""Rate limits per identity, per server and per tool (FR-025), on the `limits` library.

Storage is `memory://` embedded and `redis://...` when gateway replicas share limits.
A denied hit yields the headers of a 429: `Retry-After` (whole seconds) and
`X-RateLimit-Limit`/`-Remaining`/`-Reset` (IETF draft-ietf-httpapi-ratelimit-headers
style, reset as seconds from now). Each limit hit is logged with the identity
(NFR-SEC-007), never with a credential.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("mcpaas.ratelimit")


@dataclass(frozen=True)
class RateLimitDecision:
    """Outcome of one request against every applicable limit.

    `limit`/`remaining`/`reset_s` describe the most constrained limit; `retry_after_s`
    is set only when denied.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    scope: str = ""
    retry_after_s: int | None = None

    def headers(self) -> dict[str, str]:
        """Response headers for this decision (429 carries `Retry-After` too)."""
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                   "X-RateLimit-Reset": str(self.reset_s)}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    """Checks a request against per-identity, per-server and per-tool limits.

    Args:
        storage_uri: `memory://` or a Redis URL.
        per_identity / per_server / per_tool: limit strings such as ``"120/minute"``;
            None disables that scope. Raises ValueError for an unparsable string.
    """

    def __init__(self, storage_uri: str = "memory://", *, per_identity: str | None = None,
                 per_server: str | None = None, per_tool: str | None = None) -> None:
        # a moving window is exact: a counter approximation lets a burst through when it
        # straddles a window boundary, which is the moment an attacker would pick
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._limits: dict[str, RateLimitItem | None] = {
            "identity": parse(per_identity) if per_identity else None,
            "server": parse(per_server) if per_server else None,
            "tool": parse(per_tool) if per_tool else None,
        }

    def hit(self, identity: str, server: str, tool: str | None = None) -> RateLimitDecision:
        """Count one request; denied as soon as any applicable limit is exhausted."""
        keys = {"identity": (identity,), "server": (server, identity), "tool": (server, tool or "", identity)}
        tightest: RateLimitDecision | None = None
        for scope, item in self._limits.items():
            if item is None or (scope == "tool" and not tool):
                continue
            allowed = self._limiter.hit(item, scope, *keys[scope])
            stats = self._limiter.get_window_stats(item, scope, *keys[scope])
            reset_s = max(0, math.ceil(stats.reset_time - time.time()))
            decision = RateLimitDecision(allowed, item.amount, stats.remaining, reset_s, scope,
                                         None if allowed else max(1, reset_s))
            if not allowed:
                log.warning("rate limit hit: scope=%s identity=%s server=%s tool=%s", scope, identity,
                            server, tool)
                return decision
            if tightest is None or decision.remaining < tightest.remaining:
                tightest = decision
        return tightest or RateLimitDecision(True, 0, 0, 0)
