"""API keys: shown once, stored hashed, scoped, expiring, revocable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.auth.api_keys import create_key, list_keys, revoke_key, verify_key
from shared.auth.principal import Role
from shared.auth.tokens import AuthenticationError
from shared.models import utc_now
from shared.store import SQLiteDocumentStore


@pytest.fixture
def store(tmp_path):
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


def test_key_verifies_to_a_scoped_principal_and_is_stored_hashed(store):
    plaintext, record = create_key(store, name="ci", roles=[Role.DEVELOPER], servers=["echo"], created_by="alice")
    principal = verify_key(store, plaintext)
    assert principal.kind == "api_key" and principal.roles == {Role.DEVELOPER} and principal.servers == {"echo"}
    stored = store.read("api_keys", record.id, record.id)
    assert plaintext.split("_")[-1] not in str(stored)
    assert [key.id for key in list_keys(store)] == [record.id]


@pytest.mark.parametrize("mutate", [
    lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),
    lambda key: "mcpk_0123456789abcdef_" + "x" * 43,
    lambda key: "Bearer " + key,
    lambda key: "",
    lambda key: key + "\n",
], ids=["wrong-secret", "unknown-id", "malformed", "empty", "trailing-newline"])
def test_wrong_keys_are_rejected(store, mutate):
    plaintext, _ = create_key(store, name="ci", roles=[Role.READER], created_by="alice")
    with pytest.raises(AuthenticationError):
        verify_key(store, mutate(plaintext))


def test_revoked_and_expired_keys_are_rejected(store):
    revoked, record = create_key(store, name="a", roles=[Role.READER], created_by="alice")
    revoke_key(store, record.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        verify_key(store, revoked)
    expired, _ = create_key(store, name="b", roles=[Role.READER], created_by="alice",
                            expires_at=utc_now() - timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match="expired"):
        verify_key(store, expired)
