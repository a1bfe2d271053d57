"""Azure Cosmos DB for NoSQL adapter of the document-store port (`MCPAAS_STORE=cosmos`).

Each port container is a Cosmos container of the same name in one database
(`MCPAAS_COSMOS_DATABASE`), partitioned on the field named in `CONTAINERS`:

| container          | partition key | why |
|--------------------|---------------|-----|
| `servers`          | `/id`         | one server at a time by name; the etag-guarded claim is a point operation |
| `api_keys`         | `/id`         | looked up one key at a time by its id |
| `revisions`        | `/server`     | listed per server (history, rollback, delete) in one partition |
| `audit`            | `/entity`     | "what happened to X" is the question; events of one entity stay together |
| `invocations`      | `/server`     | high volume: writes spread by server; a per-server report reads one partition |
| `cost_events`      | `/server`     | cost is reported per server |
| `feedback`         | `/server`     | feedback is read per server |
| `checklists`       | `/server`     | one production-readiness checklist per server |
| `quota_samples`    | `/region`     | quota is sampled and advised per Azure region |
| `apim_snapshots`   | `/service`    | snapshots are taken and restored per API Management service |
| `idempotency_keys` | `/id`         | one point read/create per processed message key |

Semantics match the SQLite adapter: `_etag` on every returned document (Cosmos's own
etag), create of an existing id → `ConflictError` (409), replace/delete with a stale etag
→ `ConflictError` (Cosmos answers 412), missing → `NotFoundError`. Cosmos system
properties other than `_etag` (`_rid`, `_self`, `_ts`, `_attachments`) are dropped so
documents look the same on both adapters.

Paged queries (`query_page`) hand Cosmos's own continuation token back to the caller,
sealed (`shared.store.paging`); a single-field ORDER BY keeps them on the default
indexing policy (a tie-break field would need a composite index), and Cosmos's token
resumes correctly among equal sort values by itself.

Queries page with continuation tokens (`max_item_count` + `by_page()`) and apply `limit`
by stopping early: the `@vercel/cosmosdb-server` emulator used in tests lacks
OFFSET/LIMIT, and stopping early reads no more pages than needed on Azure too.
A partition-scoped query also repeats the key in its WHERE clause, which the emulator
requires and Cosmos treats as a no-op.

Invocation queries (`shared.audit.query_invocations`, FR-022) are index-served, not
scans: with a server they run in that server's partition only (`/server`); every filter
(`tool`, `actor`, `result`), the `id` range (ids sort by time) and `ORDER BY c.id` use
the range index that Cosmos's default indexing policy keeps on every path (containers
created here and by infra keep that default policy; a custom policy must keep `/tool`,
`/actor`, `/result` and `/id` included).

Authentication: Entra ID through `DefaultAzureCredential` (managed identity on Azure) when
no key is given; an account key only for an emulator. With Entra ID the data-plane role
cannot create databases or containers, so on Azure they come from infra (Bicep); the
create-if-missing calls here then only read their metadata.
Docs: https://learn.microsoft.com/azure/cosmos-db/nosql/sdk-python,
https://learn.microsoft.com/azure/cosmos-db/nosql/database-transactions-optimistic-concurrency
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

from azure.core import MatchConditions
from azure.cosmos import CosmosClient, PartitionKey, exceptions

from shared.errors import ConflictError, NotFoundError
from shared.store.paging import ContinuationError, Page, seal, unseal
from shared.store.port import CONTAINERS, Document, Ranges

log = logging.getLogger(__name__)

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Cosmos forbids these in ids (https://learn.microsoft.com/rest/api/cosmos-db/resource-id)
_BAD_ID = re.compile(r"[/\\?#]")
_SYSTEM = frozenset({"_rid", "_self", "_ts", "_attachments", "_lsn", "_etag"})
# cosmosdb-server 1.0.1 answers 500 instead of 404 to a point read of a missing document
# unless this header skips its broken partition check; Cosmos ignores it on point reads.
# (Sent through azure-core's per-call `headers`, since the SDK drops `initial_headers` here.)
_POINT_READ_HEADERS = {"x-ms-documentdb-query-enablecrosspartition": "true"}


def _partition_value(container: str, doc: Document) -> Any:
    if container not in CONTAINERS:
        raise ValueError(f"unknown container '{container}'")
    doc_id = doc.get("id")
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError("document needs a non-empty string 'id'")
    if _BAD_ID.search(doc_id):
        raise ValueError(f"document id '{doc_id}' must not contain '/', '\\', '?' or '#'")
    value = doc.get(CONTAINERS[container])
    if value is None:
        raise ValueError(f"document needs partition key field '{CONTAINERS[container]}'")
    return value


def _field(name: str) -> str:
    # bracket notation, so fields named like SQL keywords (value, order) still work
    if not _FIELD.match(name):
        raise ValueError(f"invalid field name '{name}'")
    return f'c["{name}"]'


def _body(doc: Document) -> Document:
    """What we send: the caller's fields without system properties Cosmos owns."""
    return {key: value for key, value in doc.items() if key not in _SYSTEM}


def _returned(doc: dict[str, Any]) -> Document:
    """What we return: the document plus `_etag`, as the SQLite adapter does."""
    return {**_body(doc), "_etag": doc["_etag"]}


@contextlib.contextmanager
def _errors(container: str, doc_id: str) -> Iterator[None]:
    """Map Cosmos HTTP errors to the port's domain errors."""
    try:
        yield
    except exceptions.CosmosResourceExistsError:
        raise ConflictError(f"{container} '{doc_id}' already exists") from None
    except exceptions.CosmosAccessConditionFailedError:
        raise ConflictError(f"{container} '{doc_id}' was changed by another writer") from None
    except exceptions.CosmosResourceNotFoundError:
        raise NotFoundError(f"{container} '{doc_id}' not found") from None


def _open_containers(client: CosmosClient, database: str) -> dict[str, Any]:
    """Container clients for every port container, creating the database and containers
    when missing. The SDK's create-if-not-exists is read-then-create, so a process starting
    at the same moment (devhost and gateway, or two replicas) can win the create: its 409
    means "exists", not failure."""
    try:
        db = client.create_database_if_not_exists(database)
    except exceptions.CosmosResourceExistsError:
        db = client.get_database_client(database)
    containers = {}
    for name, field in CONTAINERS.items():
        try:
            containers[name] = db.create_container_if_not_exists(
                name, partition_key=PartitionKey(path=f"/{field}"))
        except exceptions.CosmosResourceExistsError:
            containers[name] = db.get_container_client(name)
    return containers


class CosmosDocumentStore:
    """`DocumentStore` on Azure Cosmos DB (sync SDK client; safe to share across threads).

    Args:
        endpoint: account endpoint, e.g. ``https://<account>.documents.azure.com:443/``.
        database: database name; it and every container in `CONTAINERS` are created if
            missing.
        key: account key (emulator); when None, `credential` or `DefaultAzureCredential`.
        credential: an azure-identity token credential to use instead of the default.
        verify_tls: False only for an emulator's self-signed certificate.
        page_size: documents per query page (`max_item_count`).
        endpoint_discovery: False pins every request to `endpoint` instead of the
            regional endpoints the account advertises (a relay or proxy in front of it).

    Raises `azure.cosmos.exceptions.CosmosHttpResponseError` if the account cannot be
    reached or the database/containers cannot be read or created.
    """

    def __init__(self, endpoint: str, database: str, *, key: str | None = None,
                 credential: Any = None, verify_tls: bool = True, page_size: int = 100,
                 endpoint_discovery: bool = True) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if not verify_tls:
            log.warning("TLS verification is off for the Cosmos endpoint (emulators only)")
            # one warning above instead of urllib3's warning on every request
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        if key is None and credential is None:
            from azure.identity import DefaultAzureCredential  # only needed on Azure

            credential = DefaultAzureCredential()
        self.page_size = page_size
        client = CosmosClient(endpoint, credential=key if key is not None else credential,
                              connection_verify=verify_tls, enable_endpoint_discovery=endpoint_discovery)
        self._containers = _open_containers(client, database)

    def _container(self, name: str) -> Any:
        try:
            return self._containers[name]
        except KeyError:
            raise ValueError(f"unknown container '{name}'") from None

    def create(self, container: str, doc: Document) -> Document:
        """Insert `doc`; ConflictError if (partition key, id) exists."""
        _partition_value(container, doc)
        with _errors(container, doc["id"]):
            return _returned(self._container(container).create_item(_body(doc)))

    def read(self, container: str, doc_id: str, partition_key: str) -> Document:
        """Return the document; NotFoundError if absent."""
        with _errors(container, doc_id):
            return _returned(self._container(container).read_item(
                doc_id, partition_key=partition_key, headers=_POINT_READ_HEADERS))

    def replace(self, container: str, doc: Document, if_match: str) -> Document:
        """Overwrite if the stored etag is `if_match`; ConflictError otherwise (412)."""
        _partition_value(container, doc)
        with _errors(container, doc["id"]):
            return _returned(self._container(container).replace_item(
                doc["id"], _body(doc), etag=if_match, match_condition=MatchConditions.IfNotModified))

    def upsert(self, container: str, doc: Document) -> Document:
        """Insert or overwrite unconditionally."""
        _partition_value(container, doc)
        with _errors(container, doc["id"]):
            return _returned(self._container(container).upsert_item(_body(doc)))

    def upsert_many(self, container: str, docs: list[Document]) -> None:
        """Upsert `docs` one by one after validating all (a transactional batch would
        need one partition key, and audit records span servers)."""
        for doc in docs:
            _partition_value(container, doc)
        for doc in docs:
            self.upsert(container, doc)

    def delete(self, container: str, doc_id: str, partition_key: str,
               if_match: str | None = None) -> None:
        """Remove the document; NotFoundError if absent, ConflictError on etag mismatch."""
        condition: dict[str, Any] = {}
        if if_match is not None:
            condition = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
        with _errors(container, doc_id):
            self._container(container).delete_item(doc_id, partition_key=partition_key, **condition)

    def query(self, container: str, filters: dict[str, Any] | None = None, *,
              partition_key: str | None = None, order_by: str | None = None,
              descending: bool = False, limit: int | None = None,
              ranges: Ranges | None = None) -> list[Document]:
        """Documents whose top-level fields equal `filters` and lie in `ranges`, ordered
        and limited.

        Pages through results `page_size` at a time and stops once `limit` are read.
        """
        target = self._container(container)
        sql, parameters, scope = _select(container, filters, partition_key, order_by, descending, ranges)
        if limit is not None and limit <= 0:
            return []
        page_size = min(self.page_size, limit) if limit is not None else self.page_size
        pages = target.query_items(sql, parameters=parameters, max_item_count=page_size,
                                   **scope).by_page()
        found: list[Document] = []
        for page in pages:
            found.extend(_returned(doc) for doc in page)
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found

    def query_page(self, container: str, filters: dict[str, Any] | None = None, *, limit: int,
                   continuation: str | None = None, partition_key: str | None = None,
                   order_by: str = "id", descending: bool = False,
                   ranges: Ranges | None = None) -> Page:
        """One page with Cosmos's own continuation (`by_page(token)`, see the port).

        Cosmos may answer a page with fewer items than asked while more remain, so this
        asks again for the rest from the token it got until `limit` are read or the
        query is exhausted: every page but the last is full, as on SQLite.
        """
        if not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be an integer of at least 1")
        target = self._container(container)
        sql, parameters, scope = _select(container, filters, partition_key, order_by, descending, ranges)
        query = {"adapter": "cosmos", "container": container, "filters": filters or {},
                 "partition": partition_key, "order": order_by, "descending": descending,
                 "ranges": ranges or {}}
        token = unseal(query, continuation) if continuation is not None else None
        if token is not None and not isinstance(token, str):
            raise ContinuationError()
        found: list[Document] = []
        while True:
            pager = target.query_items(sql, parameters=parameters, max_item_count=limit - len(found),
                                       **scope).by_page(token)
            found.extend(_returned(doc) for doc in _first_page(pager, resumed=token is not None))
            token = pager.continuation_token
            if not token or len(found) >= limit:
                return Page(found, seal(query, token) if token else None)


def _first_page(pager: Any, *, resumed: bool) -> list[dict[str, Any]]:
    """The documents of the pager's next page. Cosmos (or the SDK, parsing it) refuses a
    continuation token it did not issue; when resuming, that is the caller's bad token."""
    try:
        return list(next(pager, []))
    except exceptions.CosmosHttpResponseError as error:
        if resumed and error.status_code == 400:
            raise ContinuationError() from None
        raise
    except (ValueError, KeyError, TypeError):
        if resumed:
            raise ContinuationError() from None
        raise


def _select(container: str, filters: dict[str, Any] | None, partition_key: str | None,
            order_by: str | None, descending: bool,
            ranges: Ranges | None) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """The SQL of a query, its parameters and its scope (one partition or all)."""
    if container not in CONTAINERS:
        raise ValueError(f"unknown container '{container}'")
    clauses, parameters = [], []
    conditions = [(name, "=", value) for name, value in (filters or {}).items()]
    if partition_key is not None:
        conditions.insert(0, (CONTAINERS[container], "=", partition_key))
    for name, (lower, upper) in (ranges or {}).items():
        conditions += [(name, op, bound) for op, bound in ((">=", lower), ("<", upper))
                       if bound is not None]
    for index, (name, operator, value) in enumerate(conditions):
        clauses.append(f"{_field(name)} {operator} @p{index}")
        parameters.append({"name": f"@p{index}", "value": value})
    sql = "SELECT * FROM c" + (" WHERE " + " AND ".join(clauses) if clauses else "")
    if order_by:
        sql += f" ORDER BY {_field(order_by)} {'DESC' if descending else 'ASC'}"
    scope = ({"partition_key": partition_key} if partition_key is not None
             else {"enable_cross_partition_query": True})
    return sql, parameters, scope
