"""Azure Key Vault secret store (NFR-SEC-002) through `azure.keyvault.secrets.SecretClient`.

References are Key Vault secret ids pinning a version,
``https://{vault}.vault.azure.net/secrets/{name}/{version}``; only ids of the configured
vault are accepted. Deleting removes every version: the secret is soft-deleted and then
purged when the vault allows it (a vault with purge protection keeps it until its
retention ends; putting the name again recovers it first, since Key Vault refuses to set
a secret that is deleted but recoverable). REST reference:
https://learn.microsoft.com/rest/api/keyvault/secrets/
"""

from __future__ import annotations

import logging
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets import KeyVaultSecretIdentifier, SecretClient

from shared.secrets.port import SECRET_NAME, SecretNotFoundError

log = logging.getLogger(__name__)


class KeyVaultSecretStore:
    """`SecretStore` on one Key Vault.

    `vault_url` is ``https://{vault}.vault.azure.net``; `credential` is
    ``DefaultAzureCredential`` in production (the control plane needs the RBAC role
    "Key Vault Secrets Officer", the gateway "Key Vault Secrets User"); `client_options`
    go to `SecretClient` (tests pass a `transport`). Raises SecretNotFoundError from
    `get`/`name_of` for a reference outside this vault or without a version, and from
    `get` when Key Vault answers 404; other `azure.core.exceptions` propagate.
    """

    def __init__(self, vault_url: str, credential: TokenCredential, **client_options: Any) -> None:
        self._vault_url = vault_url.rstrip("/")
        self._client = SecretClient(vault_url=self._vault_url, credential=credential, **client_options)

    def put(self, name: str, value: str) -> str:
        """Set a new version of `name`; returns its secret id (with the version)."""
        if not SECRET_NAME.match(name):
            raise ValueError(f"invalid secret name {name!r}: 1-127 characters of [0-9a-zA-Z-]")
        try:
            secret = self._client.set_secret(name, value, content_type="text/plain")
        except ResourceExistsError:  # deleted but recoverable (purge protection): bring it back first
            self._client.begin_recover_deleted_secret(name).wait()
            secret = self._client.set_secret(name, value, content_type="text/plain")
        if not secret.id:
            raise HttpResponseError(f"Key Vault answered set_secret for {name} without an id")
        return secret.id

    def name_of(self, reference: str) -> str:
        """The secret name of a versioned secret id of this vault."""
        try:
            parsed = KeyVaultSecretIdentifier(reference)
        except ValueError:
            raise SecretNotFoundError(f"not a Key Vault secret id: {reference[:200]!r}") from None
        if parsed.vault_url.rstrip("/").lower() != self._vault_url.lower() or not parsed.version:
            raise SecretNotFoundError(f"not a versioned secret id of {self._vault_url}: {reference[:200]!r}")
        return parsed.name

    def get(self, reference: str) -> str:
        """The value of the version `reference` pins."""
        name = self.name_of(reference)
        version = KeyVaultSecretIdentifier(reference).version
        try:
            secret = self._client.get_secret(name, version)
        except ResourceNotFoundError:
            raise SecretNotFoundError(f"no secret behind {reference}") from None
        return secret.value or ""

    def delete(self, name: str) -> None:
        """Delete every version of `name` and purge it where the vault allows; idempotent."""
        try:
            self._client.begin_delete_secret(name).wait()
        except ResourceNotFoundError:
            return
        try:
            self._client.purge_deleted_secret(name)
        except HttpResponseError as error:  # purge protection or no purge permission: retention ends it
            log.warning("secret %s deleted but not purged: %s", name, error.reason)
