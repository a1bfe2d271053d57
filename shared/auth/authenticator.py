"""Turns request credentials into a `Principal`: bearer tokens or API keys.

Modes (`MCPAAS_AUTH_MODE`): ``entra`` (Entra ID tokens), ``local`` (the embedded
issuer, default of `mcpaas up`) and ``none`` (protocol test rigs only: every caller
is an anonymous Admin; a warning is logged at start and again, with the count of
requests let in, at most once every `NONE_WARNING_INTERVAL_S` while requests come).
API keys (`mcpk_...`) are accepted in every mode but ``none``, as `Authorization:
Bearer mcpk_...` or `X-API-Key`. Credentials never reach a log line.

Verified credentials are cached (`CredentialCache`), because verifying an RS256 token
costs ~200 us and an API key a store read, on every MCP call: keyed by the SHA-256 of
the credential (the cache holds no credential), bounded LRU, and an entry never outlives
the token's `exp` or the key's `expires_at`. Tokens are kept at most `TOKEN_CACHE_S`
(a rotated signing key is honoured within that bound); API keys at most the
`api_key_ttl_s` given (`MCPAAS_AUTH_API_KEY_CACHE_SECONDS`): the bound within which a
revoked key stops working in another process. `forget` drops a subject at once (the
control plane revoking a key). Failures are never cached.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict

from shared.auth.api_keys import PREFIX, verify_key_expiry
from shared.auth.principal import AuthMode, Principal, Role
from shared.auth.tokens import AuthenticationError, TokenValidator
from shared.store.port import DocumentStore

log = logging.getLogger("mcpaas.auth")

# seconds between repeats of the "authentication is off" warning (a warning per request
# would cost a log line per MCP call)
NONE_WARNING_INTERVAL_S = 60.0

# seconds a verified bearer token is trusted without verifying it again (if its `exp` is later)
TOKEN_CACHE_S = 300.0

ANONYMOUS_ADMIN = Principal(subject="anonymous", name="anonymous", kind="anonymous",
                            roles=frozenset({Role.ADMIN}))


class CredentialCache:
    """Verified credentials: SHA-256 of the credential -> (principal, expiry in epoch
    seconds), least recently used first out beyond `size` entries. Thread-safe (the
    gateway verifies API keys in worker threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(credential: str) -> bytes:
        """The cache key of a credential (its digest: the cache never holds a secret)."""
        return hashlib.sha256(credential.encode()).digest()

    def get(self, key: bytes) -> Principal | None:
        """The principal verified for `key`, unless absent or expired (then dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.time() >= entry[1]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: bytes, principal: Principal, expires: float) -> None:
        """Remember `principal` for `key` until `expires` (epoch seconds)."""
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = (principal, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, subject: str) -> None:
        """Drop every entry of `subject` (a revoked key must stop working here at once)."""
        with self._lock:
            for key in [key for key, (principal, _) in self._entries.items() if principal.subject == subject]:
                del self._entries[key]


class Authenticator:
    """Authenticates one request's credentials.

    Args:
        mode: the auth mode; ``none`` needs no validator.
        validator: validates bearer JWTs (Entra or local issuer).
        store: holds API keys.
        cache_size: verified credentials kept (0: none).
        api_key_ttl_s: seconds a verified API key is kept (its revocation bound).
    """

    def __init__(self, mode: AuthMode, validator: TokenValidator | None, store: DocumentStore, *,
                 cache_size: int = 10_000, api_key_ttl_s: float = 5.0) -> None:
        if mode is not AuthMode.NONE and validator is None:
            raise ValueError(f"auth mode {mode.value} needs a token validator")
        self.mode, self._validator, self._store = mode, validator, store
        self.cache = CredentialCache(cache_size)
        self._api_key_ttl = api_key_ttl_s
        self._unauthenticated = 0
        self._warned_at = time.monotonic()
        if mode is AuthMode.NONE:
            log.warning("MCPAAS_AUTH_MODE=none: authentication is OFF; every caller is an anonymous Admin. "
                        "Use only for protocol test rigs.")

    def authenticate(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """The caller of a request with these `Authorization` / `X-API-Key` header values.

        Raises AuthenticationError (401) when no credential is present or it is invalid.
        """
        if self.mode is AuthMode.NONE:
            self._warn_unauthenticated()
            return ANONYMOUS_ADMIN
        credential, is_key = _credential(authorization, api_key)
        key = self.cache.key(credential)
        principal = self.cache.get(key)
        if principal is not None:
            return principal
        now = time.time()
        if is_key:
            principal, expires = verify_key_expiry(self._store, credential)
            until = min(expires or now + self._api_key_ttl, now + self._api_key_ttl)
        else:
            assert self._validator is not None  # __init__ refuses a mode other than none without one
            principal, expires = self._validator.verify(credential)
            until = min(expires, now + TOKEN_CACHE_S)
        self.cache.put(key, principal, until)
        return principal

    def forget(self, subject: str) -> None:
        """Stop trusting cached credentials of `subject` in this process (key revoked)."""
        self.cache.forget(subject)

    def cached(self, authorization: str | None, api_key: str | None = None) -> Principal | None:
        """The caller when its credential is in the cache (no I/O, never raises), else None."""
        if self.mode is AuthMode.NONE:
            return None
        try:
            return self.cache.get(self.cache.key(_credential(authorization, api_key)[0]))
        except AuthenticationError:
            return None

    def _warn_unauthenticated(self) -> None:
        self._unauthenticated += 1
        now = time.monotonic()
        if now - self._warned_at >= NONE_WARNING_INTERVAL_S:
            log.warning("%d requests accepted without authentication (MCPAAS_AUTH_MODE=none)",
                        self._unauthenticated)
            self._unauthenticated, self._warned_at = 0, now


def _credential(authorization: str | None, api_key: str | None) -> tuple[str, bool]:
    """The credential of a request and whether it is an API key: the `X-API-Key` value,
    else the bearer token (a JWT, or an API key by its prefix). AuthenticationError when
    there is none."""
    if api_key:
        return api_key.strip(), True
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthenticationError("missing bearer token or API key")
    credential = credential.strip()
    return credential, credential.startswith(PREFIX)
