"""Builds the process's `Authenticator` from the settings: one place for both deployables.

The control plane (`triggers.security`) and the gateway call `authenticator_from_settings`
with the process settings and document store; the result is cached per process, so the
local signing key is read once and Entra's JWKS cache is shared by every request.
"""

from __future__ import annotations

import threading

from shared.auth.authenticator import Authenticator
from shared.auth.principal import AuthMode
from shared.auth.tokens import LocalIssuer, TokenValidator, entra_validator
from shared.settings import Settings
from shared.store.port import DocumentStore

_lock = threading.Lock()
# values keep settings and store alive, so their ids cannot be reused by other objects
_cache: dict[tuple[int, int], tuple[Settings, DocumentStore, Authenticator]] = {}


def local_issuer(settings: Settings) -> LocalIssuer:
    """The embedded issuer whose key is `settings.auth_key_path` (created on first use)."""
    return LocalIssuer(settings.auth_key_path)


def _validator(settings: Settings) -> TokenValidator | None:
    if settings.auth_mode is AuthMode.NONE:
        return None
    if settings.auth_mode is AuthMode.LOCAL:
        return local_issuer(settings).validator()
    if not (settings.entra_jwks_url and settings.entra_issuers and settings.entra_audiences):
        raise ValueError("MCPAAS_AUTH_MODE=entra needs MCPAAS_ENTRA_JWKS_URL, MCPAAS_ENTRA_ISSUERS "
                         "and MCPAAS_ENTRA_AUDIENCES")
    return entra_validator(settings.entra_jwks_url, issuers=settings.entra_issuers,
                           audiences=settings.entra_audiences,
                           allowed_clients=settings.entra_allowed_clients,
                           allowed_tenants=settings.entra_allowed_tenants)


def authenticator_from_settings(settings: Settings, store: DocumentStore) -> Authenticator:
    """The process-wide `Authenticator` for `settings.auth_mode`, API keys in `store`.

    Cached per (settings, store) object pair, so repeated calls are cheap. Raises
    ValueError when ``entra`` is selected without its JWKS URL, issuers and audiences.
    """
    key = (id(settings), id(store))
    with _lock:
        if key not in _cache:
            _cache[key] = (settings, store, Authenticator(
                settings.auth_mode, _validator(settings), store, cache_size=settings.auth_token_cache_size,
                api_key_ttl_s=settings.auth_api_key_cache_seconds))
        return _cache[key][2]
