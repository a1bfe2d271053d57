"""One authentication entry point for tokens and API keys, per mode."""

from __future__ import annotations

import logging

import pytest

from shared.auth.api_keys import create_key
from shared.auth.authenticator import AuthMode, Authenticator
from shared.auth.principal import Role
from shared.auth.tokens import AuthenticationError, LocalIssuer
from shared.store import SQLiteDocumentStore


@pytest.fixture
def parts(tmp_path):
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    issuer = LocalIssuer(tmp_path / "key.pem")
    return store, issuer, Authenticator(AuthMode.LOCAL, issuer.validator(), store)


def test_bearer_token_and_api_key_both_authenticate(parts):
    store, issuer, auth = parts
    assert auth.authenticate(f"Bearer {issuer.mint('alice', [Role.READER])}").subject == "alice"
    key, record = create_key(store, name="ci", roles=[Role.DEVELOPER], created_by="alice")
    assert auth.authenticate(f"Bearer {key}").subject == f"key:{record.id}"
    assert auth.authenticate(None, api_key=key).kind == "api_key"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer nonsense"])
def test_missing_or_bad_credentials_are_401(parts, header):
    with pytest.raises(AuthenticationError):
        parts[2].authenticate(header)


def test_mode_none_warns_at_start_and_then_each_minute_with_a_count(tmp_path, caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("shared.auth.authenticator.time.monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="mcpaas.auth"):
        auth = Authenticator(AuthMode.NONE, None, SQLiteDocumentStore(tmp_path / "s.sqlite"))
        principal = auth.authenticate(None)
        auth.authenticate(None)
        clock[0] += 61
        auth.authenticate(None)
        auth.authenticate(None)
    assert principal.roles == {Role.ADMIN}
    warnings = [r.getMessage() for r in caplog.records if "none" in r.getMessage()]
    assert len(warnings) == 2 and warnings[1].startswith("3 requests accepted without authentication")


def test_credentials_never_reach_the_logs(parts, caplog):
    store, issuer, auth = parts
    token = issuer.mint("alice", [Role.READER])
    key, _ = create_key(store, name="ci", roles=[Role.READER], created_by="alice")
    with caplog.at_level(logging.DEBUG):
        for credential in (token, token[:-3] + "abc", key, key[:-2] + "zz"):
            try:
                auth.authenticate(f"Bearer {credential}")
            except AuthenticationError as error:
                assert credential not in str(error)
    assert token not in caplog.text and key not in caplog.text and key.split("_")[-1] not in caplog.text
