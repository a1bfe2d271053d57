"""Rate limits per identity, per server and per tool (FR-025), on the `limits` library.

Storage is `redis://...` when gateway replicas share limits, through the `limits`
library's moving window. In one process (`memory://`) the same exact moving window is
kept by `LocalWindows`, a deque of hit times per key: `limits`' memory storage starts a
timer thread every 10 ms and inserts at the front of a list, and measured ~50 us per
gateway call for three limits, against ~5 us here (issue 10 "Measure": guard cost).
A denied hit yields the headers of a 429: `Retry-After` (whole seconds) and
`X-RateLimit-Limit`/`-Remaining`/`-Reset` (IETF draft-ietf-httpapi-ratelimit-headers
style, reset as seconds from now). Each limit hit is logged with the identity
(NFR-SEC-007), never with a credential.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
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


class LocalWindows:
    """Exact moving windows held in this process: per key, the monotonic times of the
    hits of the last period, oldest first. Keys idle for a whole period are swept once
    a minute, so memory follows the active callers. Thread-safe."""

    SWEEP_S = 60.0

    def __init__(self) -> None:
        self._hits: dict[tuple[str, ...], deque[float]] = {}
        self._lock = threading.Lock()
        self._periods: dict[tuple[str, ...], float] = {}
        self._swept = time.monotonic()

    def hit(self, key: tuple[str, ...], amount: int, period: float) -> tuple[bool, int, float]:
        """Count one hit of `key` unless its window of `period` seconds holds `amount`
        hits already. Returns (allowed, remaining, seconds until the oldest hit leaves
        the window)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
                self._periods[key] = period
            cutoff = now - period
            while hits and hits[0] <= cutoff:
                hits.popleft()
            allowed = len(hits) < amount
            if allowed:
                hits.append(now)
            if now - self._swept > self.SWEEP_S:
                self._sweep(now)
            return allowed, amount - len(hits), (hits[0] + period - now) if hits else period

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= now - self._periods[key]]:
            del self._hits[key], self._periods[key]


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
        self._local = LocalWindows() if storage_uri.startswith("memory://") else None
        self._limiter = None if self._local else MovingWindowRateLimiter(
            storage_from_string(storage_uri, **(storage_options or {})))
        limits = {"identity": per_identity, "server": per_server, "tool": per_tool}
        # only the configured scopes, parsed once
        self._limits = [(scope, item, float(item.get_expiry()))
                        for scope, item in ((scope, parse(text)) for scope, text in limits.items() if text)]

    def hit(self, identity: str, server: str, tool: str | None = None) -> RateLimitDecision:
        """Count one request; denied as soon as any applicable limit is exhausted."""
        tightest: tuple[int, int, int, str] | None = None  # remaining, limit, reset, scope
        for scope, item, period in self._limits:
            if scope == "identity":
                key: tuple[str, ...] = (identity,)
            elif scope == "server":
                key = (server, identity)
            elif tool:
                key = (server, tool, identity)
            else:
                continue  # no tool: no tool limit
            allowed, remaining, reset_s = self._count(item, period, scope, key)
            if not allowed:
                log.warning("rate limit hit: scope=%s identity=%s server=%s tool=%s", scope, identity,
                            server, tool)
                return RateLimitDecision(False, item.amount, remaining, reset_s, scope, max(1, reset_s))
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, item.amount, reset_s, scope)
        if tightest is None:
            return _NO_LIMIT
        return RateLimitDecision(True, tightest[1], tightest[0], tightest[2], tightest[3])

    def _count(self, item: RateLimitItem, period: float, scope: str,
               key: tuple[str, ...]) -> tuple[bool, int, int]:
        """One hit of `key` in `scope`: (allowed, remaining, whole seconds to the reset)."""
        if self._local is not None:
            allowed, remaining, reset = self._local.hit((scope, *key), item.amount, period)
            return allowed, remaining, max(0, math.ceil(reset))
        assert self._limiter is not None  # __init__ sets exactly one of _local and _limiter
        allowed = self._limiter.hit(item, scope, *key)
        stats = self._limiter.get_window_stats(item, scope, *key)
        return allowed, stats.remaining, max(0, math.ceil(stats.reset_time - time.time()))
