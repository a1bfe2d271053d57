"""Redis with Entra ID authentication (issue 11 item 3), against a real redis-server whose
only enabled user is the identity's object id with the current token as its password,
the way Azure Cache for Redis checks Entra ID tokens. The credential is a stand-in for
`DefaultAzureCredential` at its own interface (`get_token`), issuing real JWTs."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import redis
from azure.core.credentials import AccessToken

from shared.ratelimit import RateLimiter
from shared.redis_auth import SCOPE, redis_options

from gateway.children.locks import open_locks
from tests.integration.gateway.test_provisioning import redis_url  # noqa: F401  (fixture)

OID = str(uuid.UUID(int=42))


class TokenIssuer:
    """`TokenCredential` issuing a real JWT (claims `oid`, `exp`); the same one until it
    nears expiry, as Entra ID's token cache does. Records the scopes asked for."""

    def __init__(self, oid: str = OID) -> None:
        self.oid = oid
        self.scopes: list[tuple[str, ...]] = []
        self.expires = int(time.time()) + 3600
        self.token = jwt.encode({"oid": oid, "exp": self.expires}, "k" * 32, algorithm="HS256")

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, self.expires)


@pytest.fixture
def entra_redis(redis_url: str) -> tuple[str, TokenIssuer, dict]:  # noqa: F811
    """The server accepts only user `OID` with the token the issuer gives first."""
    issuer = TokenIssuer()
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", OID, "on", f">{issuer.token}", "~*", "&*", "+@all")
    admin.execute_command("ACL", "SETUSER", "default", "off")
    return redis_url, issuer, redis_options(redis_url, True, issuer)


def test_the_client_authenticates_as_the_object_id_with_a_token_for_the_redis_scope(entra_redis):
    url, issuer, options = entra_redis
    client = redis.Redis.from_url(url, **options)
    assert client.acl_whoami() == OID
    assert issuer.scopes and set(issuer.scopes) == {(SCOPE,)}
    with pytest.raises(redis.AuthenticationError):  # without the provider: no way in
        redis.Redis.from_url(url).ping()


async def test_locks_and_ready_flags_use_the_entra_connection(entra_redis):
    url, _, options = entra_redis
    locks = open_locks(url, options)
    try:
        assert await locks.acquire("echo", "t1", 5) and not await locks.acquire("echo", "t2", 5)
        await locks.mark_ready("echo", "marker", 60)
        assert await locks.ready("echo") == "marker"
    finally:
        await locks.close()


def test_rate_limits_count_in_redis_through_the_entra_connection(entra_redis):
    url, _, options = entra_redis
    first = RateLimiter(url, per_identity="2/minute", storage_options=options)
    second = RateLimiter(url, per_identity="2/minute", storage_options=options)  # another replica
    assert [first.hit("ann", "echo").allowed, second.hit("ann", "echo").allowed,
            first.hit("ann", "echo").allowed] == [True, True, False]


def test_a_token_of_another_identity_is_refused(entra_redis):
    url, _, _ = entra_redis
    stranger = redis_options(url, True, TokenIssuer(oid=str(uuid.UUID(int=7))))
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url, **stranger).ping()


def test_entra_with_a_password_in_the_url_or_without_entra():
    with pytest.raises(ValueError, match="must not carry a password"):
        redis_options("rediss://:secret@cache:6380/0", True, TokenIssuer())
    assert redis_options("redis://cache:6379/0", False) == {} and redis_options(None, True) == {}
