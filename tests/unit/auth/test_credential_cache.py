"""The authenticator's cache of verified credentials (issue 10, guard cost): it saves the
verification, never a check: expiry, revocation and the LRU bound still hold."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from shared.auth.api_keys import create_key, revoke_key
from shared.auth.authenticator import Authenticator
from shared.auth.principal import AuthMode, Role
from shared.auth.tokens import LOCAL_AUDIENCE, LOCAL_ISSUER, AuthenticationError, LocalIssuer, TokenValidator
from shared.models import utc_now
from shared.store import SQLiteDocumentStore


class CountingValidator(TokenValidator):
    """The real validator without clock leeway, counting full verifications."""

    def __init__(self, issuer: LocalIssuer) -> None:
        public = issuer._private.public_key()
        super().__init__(lambda kid: public, issuers=[LOCAL_ISSUER], audiences=[LOCAL_AUDIENCE], leeway_s=0)
        self.verified = 0

    def verify(self, token: str):
        self.verified += 1
        return super().verify(token)


@pytest.fixture
def issuer(tmp_path):
    return LocalIssuer(tmp_path / "key.pem")


@pytest.fixture
def store(tmp_path):
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_cached_token_is_verified_once_and_the_cache_holds_only_digests(issuer, store):
    validator = CountingValidator(issuer)
    auth = Authenticator(AuthMode.LOCAL, validator, store)
    token = issuer.mint("alice", [Role.READER])
    assert auth.cached(bearer(token)) is None
    assert [auth.authenticate(bearer(token)).subject for _ in range(5)] == ["alice"] * 5
    assert validator.verified == 1 and auth.cached(bearer(token)).subject == "alice"
    keys = list(auth.cache._entries)
    assert all(len(key) == 32 and token.encode() not in key for key in keys)


def test_an_expired_token_is_refused_even_though_it_was_cached(issuer, store):
    auth = Authenticator(AuthMode.LOCAL, CountingValidator(issuer), store)
    token = issuer.mint("alice", [Role.READER], lifetime_s=1)
    assert auth.authenticate(bearer(token)).subject == "alice"
    [(_, expires)] = auth.cache._entries.values()
    assert expires <= time.time() + 1  # never past `exp`
    time.sleep(1.1)
    assert auth.cached(bearer(token)) is None
    with pytest.raises(AuthenticationError):
        auth.authenticate(bearer(token))


def test_failures_are_not_cached(issuer, store):
    validator = CountingValidator(issuer)
    auth = Authenticator(AuthMode.LOCAL, validator, store)
    forged = issuer.mint("alice", [Role.ADMIN])[:-4] + "AAAA"
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            auth.authenticate(bearer(forged))
    assert validator.verified == 2 and not auth.cache._entries


def test_a_revoked_api_key_stops_working_within_the_stated_bound(issuer, store):
    auth = Authenticator(AuthMode.LOCAL, CountingValidator(issuer), store, api_key_ttl_s=0.5)
    plaintext, record = create_key(store, name="ci", roles=[Role.DEVELOPER], created_by="admin")
    assert auth.authenticate(None, plaintext).subject == f"key:{record.id}"
    revoke_key(store, record.id)
    assert auth.authenticate(None, plaintext).subject == f"key:{record.id}"  # cached, within the bound
    time.sleep(0.6)
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(None, plaintext)


def test_forget_drops_a_revoked_key_at_once(issuer, store):
    auth = Authenticator(AuthMode.LOCAL, CountingValidator(issuer), store, api_key_ttl_s=60)
    plaintext, record = create_key(store, name="ci", roles=[Role.DEVELOPER], created_by="admin")
    assert auth.authenticate(bearer(plaintext)).subject == f"key:{record.id}"
    revoke_key(store, record.id)
    auth.forget(f"key:{record.id}")
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(bearer(plaintext))


def test_an_api_key_is_never_trusted_past_its_expiry(issuer, store):
    auth = Authenticator(AuthMode.LOCAL, CountingValidator(issuer), store, api_key_ttl_s=60)
    plaintext, _ = create_key(store, name="ci", roles=[Role.READER], created_by="admin",
                              expires_at=utc_now() + timedelta(seconds=1))
    assert auth.authenticate(None, plaintext)
    time.sleep(1.1)
    with pytest.raises(AuthenticationError, match="expired"):
        auth.authenticate(None, plaintext)


def test_the_cache_is_a_bounded_lru(issuer, store):
    validator = CountingValidator(issuer)
    auth = Authenticator(AuthMode.LOCAL, validator, store, cache_size=2)
    tokens = [issuer.mint(f"user{n}", [Role.READER]) for n in range(3)]
    for token in [tokens[0], tokens[1], tokens[0], tokens[2]]:  # user1 is the least recently used
        auth.authenticate(bearer(token))
    assert len(auth.cache._entries) == 2
    assert auth.cached(bearer(tokens[1])) is None and auth.cached(bearer(tokens[0])) is not None
