"""The document-store port: Cosmos DB's model in a small interface.

Containers hold JSON documents with an `id`, a partition key (a field named per
container in `CONTAINERS`) and an `_etag` set by the store on every write. Every
read-modify-write passes the etag it read; a lost race raises `ConflictError`, never a
silent overwrite. Source: DESIGN.md "Storage"; Cosmos DB optimistic concurrency,
https://learn.microsoft.com/azure/cosmos-db/nosql/database-transactions-optimistic-concurrency
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shared.store.paging import Page

Document = dict[str, Any]

# container name -> the document field that is its partition key
CONTAINERS: dict[str, str] = {
    "servers": "id",
    "api_keys": "id",
    "revisions": "server",
    "audit": "entity",
    "invocations": "server",
    "cost_events": "server",
    "feedback": "server",
    "checklists": "server",
    "quota_samples": "region",
    "apim_snapshots": "service",
    "idempotency_keys": "id",  # one document per processed message key (Service Bus)
}

# Secondary indexes the adapters keep (SQLite: partial expression indexes; Cosmos indexes
# every path by default): per container, the field tuples a query may filter on by
# equality, ending with the field it orders and ranges by. Invocation ids sort by time
# (`shared.audit.record_id`), so "newest calls of tool X" walks one index backwards.
# Filters on the partition key use the primary key (partition key, id) instead.
INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "invocations": (("id",), ("tool", "id"), ("actor", "id"), ("result", "id")),
    # cost events (shared.costs): ids sort by time too; quota attribution reads one model's
    "cost_events": (("id",), ("tool", "id"), ("actor", "id"), ("model", "id")),
    # quota samples and advisories (shared.quota): newest per kind, per deployment
    "quota_samples": (("kind", "at"), ("kind", "deployment", "at")),
    # feedback (shared.feedback): newest first, by artifact kind, status or artifact id; by id alone
    # (PATCH /api/feedback/{id} knows no partition); apim_snapshots and checklists only read
    # within one partition, which the primary key serves
    "feedback": (("id",), ("artifact_kind", "id"), ("artifact_kind", "status", "id"), ("status", "id"),
                 ("artifact_id", "id")),
    # paged lists (`query_page`, docs/paging.md): servers by name (= id); revisions of one
    # server by number (the partition key field `server` is the key column there);
    # audit events newest first, per entity (partition key) or by actor or action; servers
# also by the image an `auto_deploy` container server tracks (triggers.event_grid)
    "servers": (("id",), ("tracks_image",)),
    "revisions": (("server", "number", "id"),),
    "audit": (("time", "id"), ("entity", "time", "id"), ("actor", "time", "id"), ("action", "time", "id")),
}

# field -> (lower bound, inclusive; upper bound, exclusive); None leaves a side open
Ranges = dict[str, tuple[Any, Any]]


class DocumentStore(Protocol):
    """Port implemented by every store adapter; all methods are synchronous.

    Errors: `shared.errors.NotFoundError` for a missing document,
    `shared.errors.ConflictError` for an existing id on create or an etag mismatch,
    `ValueError` for an unknown container or a document without `id`/partition key.
    """

    def create(self, container: str, doc: Document) -> Document:
        """Insert `doc`; returns it with `_etag`. ConflictError if the id exists."""

    def read(self, container: str, doc_id: str, partition_key: str) -> Document:
        """Return the document. NotFoundError if absent."""

    def replace(self, container: str, doc: Document, if_match: str) -> Document:
        """Overwrite when the stored `_etag` equals `if_match`; else ConflictError."""

    def upsert(self, container: str, doc: Document) -> Document:
        """Insert or overwrite unconditionally (for idempotent, last-writer-wins data)."""

    def upsert_many(self, container: str, docs: list[Document]) -> None:
        """`upsert` each of `docs` (append-heavy data such as audit records). Every
        document is validated before any is written (ValueError); a store failure part
        way may leave some written, which a retry of the same list makes whole."""

    def delete(self, container: str, doc_id: str, partition_key: str,
               if_match: str | None = None) -> None:
        """Remove the document. NotFoundError if absent; ConflictError on etag mismatch."""

    def query(self, container: str, filters: dict[str, Any] | None = None, *,
              partition_key: str | None = None, order_by: str | None = None,
              descending: bool = False, limit: int | None = None,
              ranges: Ranges | None = None) -> list[Document]:
        """Documents whose top-level fields equal `filters` and lie in `ranges`
        (`{field: (lower inclusive, upper exclusive)}`, either side None), ordered and
        limited. Filters, ranges and order on a field tuple of `INDEXES` (or on the
        partition key and `id`) are served from an index, never a scan."""

    def query_page(self, container: str, filters: dict[str, Any] | None = None, *, limit: int,
                   continuation: str | None = None, partition_key: str | None = None,
                   order_by: str = "id", descending: bool = False,
                   ranges: Ranges | None = None) -> Page:
        """One page of `query`: at most `limit` (>= 1) documents ordered by `order_by`
        (ties in a stable order), and an opaque token resuming after them, None once no
        document is left. Pass the token back with the same query for the next page:
        paging that way returns every matching document once, without duplicates or
        gaps. Every page but the last holds exactly `limit` documents; the last may hold
        fewer, even none. `order_by` must be present in every matching document.

        Served from an index: `filters` (plus the partition key when given), then
        `order_by`, then `id` must be a field tuple of `INDEXES` (or `order_by` is `id`).
        SQLite resumes by keyset (never OFFSET); Cosmos with its own continuation.
        Raises `shared.store.paging.ContinuationError` (400, a ValueError) for a token
        this query did not issue; ValueError for `limit` < 1.
        """
