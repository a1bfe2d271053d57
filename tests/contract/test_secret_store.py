"""One contract for every `SecretStore` adapter (NFR-SEC-002): the embedded store encrypted
at rest and Azure Key Vault through the real `SecretClient` over a fake transport."""

from __future__ import annotations

import pytest

from shared.secrets.embedded import EmbeddedSecretStore
from shared.secrets.keyvault import KeyVaultSecretStore
from shared.secrets.port import SecretNotFoundError, SecretStore
from tests.fakes.keyvault import VAULT, FakeKeyVault, StaticTokenCredential


@pytest.fixture(params=["embedded", "keyvault"])
def store(request, tmp_path) -> SecretStore:
    if request.param == "embedded":
        return EmbeddedSecretStore(tmp_path / "secrets")
    return KeyVaultSecretStore(VAULT, StaticTokenCredential(), transport=FakeKeyVault())


def test_put_returns_a_reference_that_reads_back(store):
    reference = store.put("mcpaas-echo-API-TOKEN", "s3cr3t value ✓")
    assert "s3cr3t" not in reference
    assert store.get(reference) == "s3cr3t value ✓"
    assert store.name_of(reference) == "mcpaas-echo-API-TOKEN"


def test_every_put_is_a_new_version_and_old_references_keep_their_value(store):
    first = store.put("mcpaas-echo-TOKEN", "one")
    second = store.put("mcpaas-echo-TOKEN", "two")
    assert first != second
    assert (store.get(first), store.get(second)) == ("one", "two")


def test_empty_and_large_values_round_trip(store):
    assert store.get(store.put("mcpaas-empty", "")) == ""
    big = "x" * 65536
    assert store.get(store.put("mcpaas-big", big)) == big


def test_delete_removes_every_version_and_is_idempotent(store):
    first = store.put("mcpaas-gone", "a")
    second = store.put("mcpaas-gone", "b")
    kept = store.put("mcpaas-kept", "c")
    store.delete("mcpaas-gone")
    store.delete("mcpaas-gone")
    store.delete("mcpaas-never-existed")
    for reference in (first, second):
        with pytest.raises(SecretNotFoundError):
            store.get(reference)
    assert store.get(kept) == "c"


def test_a_name_can_be_put_again_after_delete(store):
    store.delete(store.name_of(store.put("mcpaas-again", "old")))
    assert store.get(store.put("mcpaas-again", "new")) == "new"


def test_unknown_version_is_not_found(store):
    reference = store.put("mcpaas-known", "v")
    unknown = reference[:-32] + "0" * 32
    with pytest.raises(SecretNotFoundError):
        store.get(unknown)


@pytest.mark.parametrize("reference", [
    "", "plain-text", "mcpaas-secret://name", "https://other-vault.vault.azure.net/secrets/n/" + "a" * 32,
    "https://fake-vault.vault.azure.net/secrets/no-version", "mcpaas-secret://../etc/passwd/" + "a" * 32,
])
def test_foreign_or_malformed_references_are_not_found(store, reference):
    with pytest.raises(SecretNotFoundError):
        store.name_of(reference)
    with pytest.raises(SecretNotFoundError):
        store.get(reference)


@pytest.mark.parametrize("name", ["", "has_underscore", "has space", "x" * 128, "slash/name"])
def test_names_outside_key_vault_rules_are_refused(store, name):
    with pytest.raises(ValueError):
        store.put(name, "v")


def test_not_found_errors_never_carry_values(store):
    reference = store.put("mcpaas-quiet", "do-not-print-me")
    store.delete("mcpaas-quiet")
    with pytest.raises(SecretNotFoundError) as raised:
        store.get(reference)
    assert "do-not-print-me" not in str(raised.value)
