"""What the Key Vault adapter adds to the contract, through the real SecretClient: the
bearer challenge, versioned ids as references, and purge-protected vaults."""

from __future__ import annotations

from azure.keyvault.secrets._shared import http_challenge_cache

from shared.secrets.keyvault import KeyVaultSecretStore
from tests.fakes.keyvault import VAULT, FakeKeyVault, StaticTokenCredential


def test_references_are_versioned_secret_ids_of_the_vault_and_requests_follow_the_challenge():
    http_challenge_cache.clear()  # the SDK keeps a vault's challenge process-wide: earlier tests answered it
    vault = FakeKeyVault()
    store = KeyVaultSecretStore(VAULT + "/", StaticTokenCredential(), transport=vault)
    reference = store.put("mcpaas-echo-TOKEN", "v1")
    assert reference.startswith(f"{VAULT}/secrets/mcpaas-echo-TOKEN/") and len(reference.rsplit("/", 1)[1]) == 32
    # the SDK's challenge policy first asks without a token, then with the challenged one
    assert vault.requests[:2] == [("PUT", "/secrets/mcpaas-echo-TOKEN")] * 2
    assert vault.secrets["mcpaas-echo-token"][0]["contentType"] == "text/plain"


def test_delete_purges_and_a_purge_protected_vault_recovers_before_the_next_put():
    vault = FakeKeyVault(purge_protected=True)
    store = KeyVaultSecretStore(VAULT, StaticTokenCredential(), transport=vault)
    store.put("mcpaas-kept", "old")
    store.delete("mcpaas-kept")
    assert "mcpaas-kept" in vault.deleted  # purge refused: soft-deleted until retention ends
    assert store.get(store.put("mcpaas-kept", "new")) == "new"
    assert ("POST", "/deletedsecrets/mcpaas-kept/recover") in vault.requests

    purging = FakeKeyVault()
    store = KeyVaultSecretStore(VAULT, StaticTokenCredential(), transport=purging)
    store.put("mcpaas-gone", "x")
    store.delete("mcpaas-gone")
    assert purging.deleted == {} and purging.secrets == {}
