"""Turns request credentials into a `Principal`: bearer tokens or API keys.

Modes (`MCPAAS_AUTH_MODE`): ``entra`` (Entra ID tokens), ``local`` (the embedded
issuer, default of `mcpaas up`) and ``none`` (protocol test rigs only: every caller
is an anonymous Admin; a warning is logged at start and again, with the count of
requests let in, at most once every `NONE_WARNING_INTERVAL_S` while requests come).
API keys (`mcpk_...`) are accepted in every mode but ``none``, as `Authorization:
Bearer mcpk_...` or `X-API-Key`. Credentials never reach a log line.
"""

from __future__ import annotations

import logging
import time

from shared.auth.api_keys import PREFIX, verify_key
from shared.auth.principal import AuthMode, Principal, Role
from shared.auth.tokens import AuthenticationError, TokenValidator
from shared.store.port import DocumentStore

log = logging.getLogger("mcpaas.auth")

# seconds between repeats of the "authentication is off" warning (a warning per request
# would cost a log line per MCP call)
NONE_WARNING_INTERVAL_S = 60.0

ANONYMOUS_ADMIN = Principal(subject="anonymous", name="anonymous", kind="anonymous",
                            roles=frozenset({Role.ADMIN}))


class Authenticator:
    """Authenticates one request's credentials.

    Args:
        mode: the auth mode; ``none`` needs no validator.
        validator: validates bearer JWTs (Entra or local issuer).
        store: holds API keys.
    """

    def __init__(self, mode: AuthMode, validator: TokenValidator | None, store: DocumentStore) -> None:
        if mode is not AuthMode.NONE and validator is None:
            raise ValueError(f"auth mode {mode.value} needs a token validator")
        self.mode, self._validator, self._store = mode, validator, store
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
        if api_key:
            return verify_key(self._store, api_key.strip())
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise AuthenticationError("missing bearer token or API key")
        credential = credential.strip()
        if credential.startswith(PREFIX):
            return verify_key(self._store, credential)
        return self._validator.validate(credential)

    def _warn_unauthenticated(self) -> None:
        self._unauthenticated += 1
        now = time.monotonic()
        if now - self._warned_at >= NONE_WARNING_INTERVAL_S:
            log.warning("%d requests accepted without authentication (MCPAAS_AUTH_MODE=none)",
                        self._unauthenticated)
            self._unauthenticated, self._warned_at = 0, now
