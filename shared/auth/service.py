"""Credentials of the control plane's own calls to the gateway (deploy probes, admin routes).

The control plane acts as the service principal ``mcpaas-controlplane`` with the Admin
role: locally a short-lived token from the embedded issuer; on Azure an Entra access
token of the app's managed identity for the gateway's audience (azure-identity
`DefaultAzureCredential`). Tokens are cached until shortly before they expire and are
never logged.
"""

from __future__ import annotations

import threading
import time

from shared.auth.factory import local_issuer
from shared.auth.principal import AuthMode, Principal, Role
from shared.settings import Settings, get_settings

SERVICE_SUBJECT = "mcpaas-controlplane"
# The scope value the deploy probe acts in for servers with a `tenancy` (FR-019): its
# service token binds no project, so without it such a server could never reach
# Running. Reserved: the gateway accepts it only from the control plane and refuses it
# to everyone else, even a caller whose credential lists it (`gateway.access.tenancy`).
PROBE_SCOPE_VALUE = "mcpaas-probe"
_LIFETIME_S = 600
_lock = threading.Lock()
_cached: dict[str, tuple[str, float]] = {}


def _mint(settings: Settings) -> tuple[str, float]:
    if settings.auth_mode is AuthMode.LOCAL:
        token = local_issuer(settings).mint(SERVICE_SUBJECT, [Role.ADMIN], lifetime_s=_LIFETIME_S)
        return token, time.time() + _LIFETIME_S
    from azure.identity import DefaultAzureCredential

    if not settings.entra_audiences:
        raise ValueError("MCPAAS_AUTH_MODE=entra needs MCPAAS_ENTRA_AUDIENCES for service tokens")
    access = DefaultAzureCredential().get_token(f"{settings.entra_audiences[0]}/.default")
    return access.token, float(access.expires_on)


def service_headers(settings: Settings) -> dict[str, str]:
    """`Authorization` header for a call to the gateway; empty in auth mode ``none``.

    Raises ValueError for ``entra`` without an audience, or azure-identity's
    ClientAuthenticationError when no managed identity is available.
    """
    if settings.auth_mode is AuthMode.NONE:
        return {}
    key = f"{settings.auth_mode.value}:{settings.auth_key_path}"
    with _lock:
        token, expires = _cached.get(key, ("", 0.0))
        if expires - time.time() < 60:  # renew a minute early: clocks and latency
            token, expires = _mint(settings)
            _cached[key] = (token, expires)
    return {"Authorization": f"Bearer {token}"}


def is_control_plane(principal: Principal, settings: Settings | None = None) -> bool:
    """True for the control plane's service principal, from a token with the Admin role
    (an API key's subject is its random id, never one of these): the subject
    `SERVICE_SUBJECT` in auth mode ``local``, or one of `settings.control_plane_principals`
    (its managed identity's object id) in ``entra``. The anonymous Admin of auth mode
    ``none`` counts too: that mode authenticates nobody. `settings` defaults to the
    process settings.
    """
    if principal.kind == "anonymous":
        return True
    if principal.kind == "api_key" or Role.ADMIN not in principal.roles:
        return False
    settings = settings or get_settings()
    if settings.auth_mode is AuthMode.ENTRA:
        return principal.subject in settings.control_plane_principals
    return principal.subject == SERVICE_SUBJECT
