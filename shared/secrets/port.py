"""The secret-store port (NFR-SEC-002, issue 10 item 4).

Secret values are write-only in MCPaaS: the control plane puts a value here and keeps
only the reference it gets back; the gateway resolves references when it starts a child
(or renders a container's Kubernetes Secret). Adapters: Azure Key Vault
(`azure-keyvault-secrets`, managed identity) and an embedded store encrypted at rest;
both pass `tests/contract/test_secret_store.py`.
"""

from __future__ import annotations

import re
from typing import Protocol

# Key Vault's rule for secret names, kept by every adapter so names port between them
SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


class SecretNotFoundError(LookupError):
    """No secret (or no such version) behind a reference; `str()` names the reference only."""


class SecretStore(Protocol):
    """Versioned secrets by name.

    `put(name, value)` stores a new version and returns its reference (an opaque string
    that pins the version, safe to store and show); `get(reference)` returns the value
    (raises SecretNotFoundError); `delete(name)` removes every version (idempotent).
    `name_of(reference)` returns the secret name a reference of this store points at
    (SecretNotFoundError for text that is not such a reference), without reading it.
    `name` is a Key Vault secret name: 1-127 characters of ``[0-9a-zA-Z-]``
    (`SECRET_NAME`); `put` raises ValueError for any other.
    """

    def put(self, name: str, value: str) -> str: ...

    def get(self, reference: str) -> str: ...

    def delete(self, name: str) -> None: ...

    def name_of(self, reference: str) -> str: ...
