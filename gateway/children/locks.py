"""Provisioning coordination across gateway replicas (FR-014, FR-016).

One interface, two adapters: `RedisLocks` (setting `MCPAAS_REDIS_URL`) holds the lock
`mcp-lock:{name}` and the ready flag `mcp-ready:{name}` in Redis, so replicas install a
server once between them; `LocalLocks` keeps the same state in process memory for the
embedded single-gateway mode. Lock values are random tokens, so only the holder can
renew or release its lock (a replica whose lock expired cannot delete a successor's).
"""

from __future__ import annotations

import time
from typing import Any, Protocol, cast

LOCK_PREFIX = "mcp-lock:"
READY_PREFIX = "mcp-ready:"

# Compare-and-act scripts: the check and the write must be one atomic step.
_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
          "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end")
_RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) else return 0 end")


class ProvisionLocks(Protocol):
    """Lock and ready-flag store; TTLs are in seconds."""

    async def acquire(self, name: str, token: str, ttl: float) -> bool:
        """Take `mcp-lock:{name}` for `ttl` unless someone holds it; True when taken."""

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        """Extend the lock while `token` still holds it; False when it was lost."""

    async def release(self, name: str, token: str) -> None:
        """Drop the lock if `token` holds it."""

    async def ready(self, name: str) -> str | None:
        """The value of `mcp-ready:{name}` (the installed spec's marker), or None."""

    async def mark_ready(self, name: str, value: str, ttl: float) -> None:
        """Set `mcp-ready:{name}` to `value` for `ttl`."""

    async def close(self) -> None:
        """Release connections."""


class LocalLocks:
    """In-process adapter (embedded mode): the same semantics, one replica."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, float]] = {}

    def _get(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None or entry[1] <= time.monotonic():
            self._values.pop(key, None)
            return None
        return entry[0]

    async def acquire(self, name: str, token: str, ttl: float) -> bool:
        """See `ProvisionLocks.acquire`."""
        if self._get(LOCK_PREFIX + name) is not None:
            return False
        self._values[LOCK_PREFIX + name] = (token, time.monotonic() + ttl)
        return True

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        """See `ProvisionLocks.renew`."""
        if self._get(LOCK_PREFIX + name) != token:
            return False
        self._values[LOCK_PREFIX + name] = (token, time.monotonic() + ttl)
        return True

    async def release(self, name: str, token: str) -> None:
        """See `ProvisionLocks.release`."""
        if self._get(LOCK_PREFIX + name) == token:
            del self._values[LOCK_PREFIX + name]

    async def ready(self, name: str) -> str | None:
        """See `ProvisionLocks.ready`."""
        return self._get(READY_PREFIX + name)

    async def mark_ready(self, name: str, value: str, ttl: float) -> None:
        """See `ProvisionLocks.mark_ready`."""
        self._values[READY_PREFIX + name] = (value, time.monotonic() + ttl)

    async def close(self) -> None:
        """Nothing to release."""


class RedisLocks:
    """Redis adapter (`redis.asyncio`), for several gateway replicas.

    Args:
        url: e.g. `redis://host:6379/0`. Connection errors surface as `redis` exceptions.
        options: more `redis.from_url` arguments (`shared.redis_auth.redis_options`:
            the Entra ID credential provider on Azure).
    """

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        import redis.asyncio  # only deployments with Redis pay for the import

        self._redis = redis.asyncio.from_url(url, decode_responses=True, **(options or {}))

    async def acquire(self, name: str, token: str, ttl: float) -> bool:
        """See `ProvisionLocks.acquire` (SET NX PX)."""
        return bool(await self._redis.set(LOCK_PREFIX + name, token, nx=True,
                                          px=int(ttl * 1000)))

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        """See `ProvisionLocks.renew`."""
        return bool(await self._redis.eval(_RENEW, 1, LOCK_PREFIX + name, token,
                                           int(ttl * 1000)))

    async def release(self, name: str, token: str) -> None:
        """See `ProvisionLocks.release`."""
        await self._redis.eval(_RELEASE, 1, LOCK_PREFIX + name, token)

    async def ready(self, name: str) -> str | None:
        """See `ProvisionLocks.ready`."""
        # decode_responses=True: replies are str (redis-py types them as bytes | str)
        return cast("str | None", await self._redis.get(READY_PREFIX + name))

    async def mark_ready(self, name: str, value: str, ttl: float) -> None:
        """See `ProvisionLocks.mark_ready` (SET EX)."""
        await self._redis.set(READY_PREFIX + name, value, ex=int(ttl))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_locks(redis_url: str | None, options: dict[str, Any] | None = None) -> ProvisionLocks:
    """`RedisLocks` (with `options`, see `RedisLocks`) when a URL is configured, else `LocalLocks`."""
    return RedisLocks(redis_url, options) if redis_url else LocalLocks()
