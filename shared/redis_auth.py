"""Redis connections of the platform, with Entra ID authentication where the cache wants it.

Azure Cache for Redis with access keys disabled (infra/modules/redis.bicep) takes an
Entra ID access token as the password and the identity's object id (`oid` claim) as the
user name (https://learn.microsoft.com/azure/azure-cache-for-redis/cache-azure-active-directory-for-authentication).
`redis_options` gives the keyword arguments every Redis client of the platform passes to
`redis.from_url` (the gateway's locks and ready flags, its rate-limit storage, its
replica directory): with `MCPAAS_REDIS_ENTRA=true`, a `credential_provider` of the
`redis-entraid` library (Redis' own Entra ID provider for redis-py) over
`DefaultAzureCredential` tokens for scope `https://redis.azure.com/.default`. The
provider refreshes a token at 70% of its life and re-authenticates open connections, so
no connection outlives its token.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential

SCOPE = "https://redis.azure.com/.default"


def entra_provider(credential: TokenCredential | None = None) -> Any:
    """A redis-py `StreamingCredentialProvider` answering (`oid`, token) of `credential`
    (default: `DefaultAzureCredential`, i.e. workload identity on AKS) for `SCOPE`."""
    from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
    from redis_entraid.cred_provider import (DEFAULT_DELAY_IN_MS, DEFAULT_EXPIRATION_REFRESH_RATIO,
                                             DEFAULT_LOWER_REFRESH_BOUND_MILLIS, DEFAULT_MAX_ATTEMPTS,
                                             EntraIdCredentialsProvider)
    from redis_entraid.identity_provider import DefaultAzureCredentialProvider

    if credential is None:
        from azure.identity import DefaultAzureCredential  # loads only where Redis uses Entra ID

        credential = DefaultAzureCredential()
    # a token request may take a second or more (IMDS, the workload-identity exchange):
    # the library's 100 ms default would fail the first connection
    config = TokenManagerConfig(DEFAULT_EXPIRATION_REFRESH_RATIO, DEFAULT_LOWER_REFRESH_BOUND_MILLIS, 10_000,
                                RetryPolicy(DEFAULT_MAX_ATTEMPTS, DEFAULT_DELAY_IN_MS))
    return EntraIdCredentialsProvider(DefaultAzureCredentialProvider(credential, (SCOPE,)), config)


@lru_cache(maxsize=1)
def _process_provider() -> Any:
    return entra_provider()  # one token manager per process, shared by every pool


def redis_options(url: str | None, entra: bool, credential: TokenCredential | None = None) -> dict[str, Any]:
    """Keyword arguments for `redis.from_url(url, ...)` (sync or asyncio) and the `limits`
    Redis storage: `{"credential_provider": ...}` with `entra`, else none (also without a `url`).

    `credential` replaces `DefaultAzureCredential` (tests). Raises ValueError when `entra`
    is set and `url` carries a password too (one of the two is a mistake).
    """
    if not (url and entra):
        return {}
    if urlsplit(url).password:
        raise ValueError("MCPAAS_REDIS_ENTRA=true authenticates with Entra ID tokens: "
                         "MCPAAS_REDIS_URL must not carry a password")
    return {"credential_provider": entra_provider(credential) if credential else _process_provider()}
