"""Document store port (DESIGN.md "Storage") and adapter selection.

Use `open_store(settings)` to get the configured adapter; code depends only on
`DocumentStore`.
"""

from functools import lru_cache

from shared.settings import get_settings
from shared.store.port import CONTAINERS, DocumentStore
from shared.store.sqlite import SQLiteDocumentStore


def open_store(settings) -> DocumentStore:
    """Return the store adapter chosen by settings (embedded SQLite for now)."""
    return SQLiteDocumentStore(settings.store_path)


@lru_cache(maxsize=1)
def get_store() -> DocumentStore:
    """The process-wide store for the process-wide settings (opened once)."""
    return open_store(get_settings())


__all__ = ["CONTAINERS", "DocumentStore", "SQLiteDocumentStore", "get_store", "open_store"]
