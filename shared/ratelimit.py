"""Rate limits per identity, per server and per tool (FR-025), on the `limits` library.

The `limits` library's exact moving window counts the hits, in its memory storage
(`memory://`, one process) or in Redis (`redis://...`) when gateway replicas share
limits. Each configured limit costs one `hit` and one `get_window_stats`: in memory
with limits 5.8 on this machine, 13-19 us per limit, growing with the hits held in the
window (the storage inserts at the front of a list), which a limit bounds by its
amount. The module once kept its own deque windows at ~5 us per call; the library is
kept instead, for one implementation of the moving window on both storages (costs and
the choice: docs/scale.md).
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
from typing import Any

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

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers()` of an admitted request as ASGI raw headers (lowercase names): set on
        every admitted MCP call, where Starlette's `MutableHeaders` costs ~9 us."""
        return [(b"x-ratelimit-limit", b"%d" % self.limit), (b"x-ratelimit-remaining", b"%d" % self.remaining),
                (b"x-ratelimit-reset", b"%d" % self.reset_s)]

    def headers(self) -> dict[str, str]:
        """Response headers for this decision (429 carries `Retry-After` too)."""
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                   "X-RateLimit-Reset": str(self.reset_s)}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


# the decision when no configured limit applies (limit 0: nothing to advertise)
_NO_LIMIT = RateLimitDecision(True, 0, 0, 0)


class RateLimiter:
    """Checks a request against per-identity, per-server and per-tool limits.

    Args:
        storage_uri: `memory://` or a Redis URL.
        storage_options: more `redis.from_url` arguments for a Redis URL
            (`shared.redis_auth.redis_options`: the Entra ID credential provider on Azure).
        per_identity / per_server / per_tool: limit strings such as ``"120/minute"``;
            None disables that scope. Raises ValueError for an unparsable string.
    """

    def __init__(self, storage_uri: str = "memory://", *, per_identity: str | None = None,
                 per_server: str | None = None, per_tool: str | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        # a moving window is exact: a counter approximation lets a burst through when it
        # straddles a window boundary, which is the moment an attacker would pick
        options = storage_options if storage_options and not storage_uri.startswith("memory://") else {}
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri, **options))
        limits = {"identity": per_identity, "server": per_server, "tool": per_tool}
        # only the configured scopes, parsed once
        self._limits = [(scope, parse(text)) for scope, text in limits.items() if text]

    def hit(self, identity: str, server: str, tool: str | None = None) -> RateLimitDecision:
        """Count one request; denied as soon as any applicable limit is exhausted."""
        tightest: tuple[int, int, int, str] | None = None  # remaining, limit, reset, scope
        for scope, item in self._limits:
            if scope == "identity":
                key: tuple[str, ...] = (identity,)
            elif scope == "server":
                key = (server, identity)
            elif tool:
                key = (server, tool, identity)
            else:
                continue  # no tool: no tool limit
            allowed, remaining, reset_s = self._count(item, scope, key)
            if not allowed:
                log.warning("rate limit hit: scope=%s identity=%s server=%s tool=%s", scope, identity,
                            server, tool)
                return RateLimitDecision(False, item.amount, remaining, reset_s, scope, max(1, reset_s))
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, item.amount, reset_s, scope)
        if tightest is None:
            return _NO_LIMIT
        return RateLimitDecision(True, tightest[1], tightest[0], tightest[2], tightest[3])

    def _count(self, item: RateLimitItem, scope: str, key: tuple[str, ...]) -> tuple[bool, int, int]:
        """One hit of `key` in `scope`: (allowed, remaining, whole seconds to the reset)."""
        allowed = self._limiter.hit(item, scope, *key)
        stats = self._limiter.get_window_stats(item, scope, *key)
        return allowed, stats.remaining, max(0, math.ceil(stats.reset_time - time.time()))
