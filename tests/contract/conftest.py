"""Contract-suite fixtures: every port's `store`/`artifacts` fixture runs on each adapter.

The Azure adapters run against the npm emulators started once per session by
`tests.emulators` (they fail, never skip, when `npm install` has not run).
"""

from __future__ import annotations

import uuid

import pytest

from shared.blobs import BlobArtifactStore, FilesystemArtifactStore
from shared.store import SQLiteDocumentStore
from shared.store.cosmos import CosmosDocumentStore
from tests.emulators import azurite_blob, cosmos_emulator  # noqa: F401  (session fixtures)

# small pages, so ordinary queries already cross page boundaries on Cosmos
COSMOS_PAGE_SIZE = 7


def cosmos_store(emulator, page_size: int = COSMOS_PAGE_SIZE) -> CosmosDocumentStore:
    """A Cosmos store on a fresh database of the emulator (tests never share data)."""
    return CosmosDocumentStore(emulator.endpoint, f"contract-{uuid.uuid4().hex[:12]}",
                               key=emulator.key, verify_tls=False, page_size=page_size)


@pytest.fixture(params=["sqlite", "cosmos"])
def store(request, tmp_path):
    """A fresh, empty `DocumentStore` of each adapter."""
    if request.param == "cosmos":
        return cosmos_store(request.getfixturevalue("cosmos_emulator"))
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


@pytest.fixture(params=["filesystem", "blob"])
def artifacts(request, tmp_path):
    """A fresh, empty `ArtifactStore` of each adapter (blob: a new Azurite container)."""
    if request.param == "blob":
        azurite = request.getfixturevalue("azurite_blob")
        return BlobArtifactStore(f"contract-{uuid.uuid4().hex[:12]}",
                                 connection_string=azurite.connection_string)
    return FilesystemArtifactStore(tmp_path / "artifacts")
