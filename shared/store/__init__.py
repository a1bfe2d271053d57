"""Document store port (DESIGN.md "Storage") and adapter selection.

Use `open_store(settings)` to get the configured adapter; code depends only on
`DocumentStore`.
"""

from functools import lru_cache

from shared.settings import get_settings
from shared.store.port import CONTAINERS, DocumentStore
from shared.store.sqlite import SQLiteDocumentStore


def open_store(settings) -> DocumentStore:
    """Return the store adapter chosen by `settings.store`: ``sqlite`` or ``cosmos``.

    Cosmos uses `cosmos_key` when set (emulator), else `DefaultAzureCredential`.
    Raises ValueError when ``cosmos`` is chosen without `cosmos_endpoint`.
    """
    if settings.store == "cosmos":
        if not settings.cosmos_endpoint:
            raise ValueError("MCPAAS_STORE=cosmos needs MCPAAS_COSMOS_ENDPOINT")
        from shared.store.cosmos import CosmosDocumentStore  # the SDK loads only when chosen

        key = settings.cosmos_key.get_secret_value() if settings.cosmos_key else None
        return CosmosDocumentStore(settings.cosmos_endpoint, settings.cosmos_database, key=key,
                                   verify_tls=settings.cosmos_verify_tls)
    return SQLiteDocumentStore(settings.store_path)


@lru_cache(maxsize=1)
def get_store() -> DocumentStore:
    """The process-wide store for the process-wide settings (opened once)."""
    return open_store(get_settings())


__all__ = ["CONTAINERS", "DocumentStore", "SQLiteDocumentStore", "get_store", "open_store"]
