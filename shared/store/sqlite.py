"""Embedded SQLite adapter of the document-store port (the local default).

One table holds every container's documents as JSON text, keyed by
(container, partition key, id). WAL mode lets the control plane and the gateway, two
processes, share the file. Conditional writes are single UPDATE/DELETE statements
guarded by the etag, so a lost race is detected by the database, not by a read.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

from shared.errors import ConflictError, NotFoundError
from shared.store.paging import ContinuationError, Page, seal, unseal
from shared.store.port import CONTAINERS, INDEXES, Document, Ranges

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    container TEXT NOT NULL,
    pk TEXT NOT NULL,
    id TEXT NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (container, pk, id)
)
"""


def _partition_key(container: str, doc: Document) -> str:
    if container not in CONTAINERS:
        raise ValueError(f"unknown container '{container}'")
    if not isinstance(doc.get("id"), str) or not doc["id"]:
        raise ValueError("document needs a non-empty string 'id'")
    key = doc.get(CONTAINERS[container])
    if key is None:
        raise ValueError(f"document needs partition key field '{CONTAINERS[container]}'")
    return str(key)


def _field(name: str) -> str:
    if not _FIELD.match(name):
        raise ValueError(f"invalid field name '{name}'")
    return f"$.{name}"


def _expr(name: str) -> str:
    """The SQL expression of top-level field `name`, inlined rather than bound: SQLite
    uses an expression index only when the query spells the very same expression.
    Safe to inline: `_field` admits identifiers only. `id` is the key column itself."""
    return "id" if name == "id" else f"json_extract(body, '{_field(name)}')"


def _indexed(container: str, name: str) -> str:
    """The column an index keeps for field `name`: the `pk` column for the container's
    partition key field (what `partition_key=` compares), else `_expr`."""
    return "pk" if name == CONTAINERS[container] and name != "id" else _expr(name)


def _index_ddl() -> list[str]:
    """Partial expression indexes of `INDEXES`: each covers its container's rows only,
    so writes to other containers pay nothing for them. The leading `container` column
    lets the planner see the index as at least as selective as the primary key."""
    return [f"CREATE INDEX IF NOT EXISTS ix_{container}_{'_'.join(fields)} ON documents "
            f"(container, {', '.join(_indexed(container, field) for field in fields)}) "
            f"WHERE container = '{container}'"
            for container, indexes in INDEXES.items() for fields in indexes]


class SQLiteDocumentStore:
    """`DocumentStore` on a SQLite file; safe to share across threads and processes.

    Args:
        path: database file; its directory is created if missing.
        busy_timeout_s: how long a write waits for another process's lock before it
            fails with `sqlite3.OperationalError` ("database is locked").
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute(_SCHEMA)
            for ddl in _index_ddl():
                conn.execute(ddl)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            self._local.conn = conn
        return conn

    @staticmethod
    def _stamp(doc: Document) -> tuple[Document, str]:
        etag = uuid.uuid4().hex
        stored = {**doc, "_etag": etag}
        return stored, json.dumps(stored, default=str)

    def create(self, container: str, doc: Document) -> Document:
        """Insert `doc`; ConflictError if (partition key, id) exists."""
        pk = _partition_key(container, doc)
        stored, text = self._stamp(doc)
        try:
            self._connect().execute(
                "INSERT INTO documents (container, pk, id, etag, body) VALUES (?, ?, ?, ?, ?)",
                (container, pk, doc["id"], stored["_etag"], text))
        except sqlite3.IntegrityError:
            raise ConflictError(f"{container} '{doc['id']}' already exists") from None
        return stored

    def read(self, container: str, doc_id: str, partition_key: str) -> Document:
        """Return the document; NotFoundError if absent."""
        row = self._connect().execute(
            "SELECT body FROM documents WHERE container = ? AND pk = ? AND id = ?",
            (container, str(partition_key), doc_id)).fetchone()
        if row is None:
            raise NotFoundError(f"{container} '{doc_id}' not found")
        return json.loads(row[0])

    def replace(self, container: str, doc: Document, if_match: str) -> Document:
        """Overwrite if the stored etag is `if_match`; ConflictError otherwise."""
        pk = _partition_key(container, doc)
        stored, text = self._stamp(doc)
        cursor = self._connect().execute(
            "UPDATE documents SET etag = ?, body = ? "
            "WHERE container = ? AND pk = ? AND id = ? AND etag = ?",
            (stored["_etag"], text, container, pk, doc["id"], if_match))
        if cursor.rowcount == 0:
            self.read(container, doc["id"], pk)  # raises NotFoundError when absent
            raise ConflictError(f"{container} '{doc['id']}' was changed by another writer")
        return stored

    def upsert(self, container: str, doc: Document) -> Document:
        """Insert or overwrite unconditionally."""
        pk = _partition_key(container, doc)
        stored, text = self._stamp(doc)
        self._connect().execute(
            "INSERT INTO documents (container, pk, id, etag, body) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (container, pk, id) DO UPDATE SET etag = excluded.etag, body = excluded.body",
            (container, pk, doc["id"], stored["_etag"], text))
        return stored

    def upsert_many(self, container: str, docs: list[Document]) -> None:
        """Upsert `docs` with one statement (one transaction, one WAL commit)."""
        for doc in docs:
            _partition_key(container, doc)  # validates every document before writing any
        tag = uuid.uuid4().hex[:24]  # etags only need to differ: one random stem per batch
        stamped = [{**doc, "_etag": f"{tag}{n:08x}"} for n, doc in enumerate(docs)]
        # One statement over one JSON array, not executemany: that releases and retakes
        # the GIL for every row, and each handover stalls the event loop's thread.
        self._connect().execute(
            "INSERT INTO documents (container, pk, id, etag, body) "
            "SELECT ?, CAST(json_extract(value, ?) AS TEXT), json_extract(value, '$.id'), "
            "json_extract(value, '$._etag'), value FROM json_each(?) WHERE true "
            "ON CONFLICT (container, pk, id) DO UPDATE SET etag = excluded.etag, body = excluded.body",
            (container, _field(CONTAINERS[container]), json.dumps(stamped, default=str)))

    def delete(self, container: str, doc_id: str, partition_key: str,
               if_match: str | None = None) -> None:
        """Remove the document; NotFoundError if absent, ConflictError on etag mismatch."""
        sql = "DELETE FROM documents WHERE container = ? AND pk = ? AND id = ?"
        params: list[Any] = [container, str(partition_key), doc_id]
        if if_match is not None:
            sql += " AND etag = ?"
            params.append(if_match)
        if self._connect().execute(sql, params).rowcount == 0:
            self.read(container, doc_id, partition_key)
            raise ConflictError(f"{container} '{doc_id}' was changed by another writer")

    def query(self, container: str, filters: dict[str, Any] | None = None, *,
              partition_key: str | None = None, order_by: str | None = None,
              descending: bool = False, limit: int | None = None,
              ranges: Ranges | None = None) -> list[Document]:
        """Documents whose top-level fields equal `filters` and lie in `ranges`, ordered
        and limited (see the port)."""
        sql, params = _select(container, filters, partition_key, order_by, descending, limit, ranges)
        return [json.loads(row[0]) for row in self._connect().execute(sql, params)]

    def query_page(self, container: str, filters: dict[str, Any] | None = None, *, limit: int,
                   continuation: str | None = None, partition_key: str | None = None,
                   order_by: str = "id", descending: bool = False,
                   ranges: Ranges | None = None) -> Page:
        """One page by keyset: rows after the (`order_by`, `id`) of the previous page's
        last row, `limit` + 1 read to know whether another page exists (see the port)."""
        sql, params, query = _keyset(container, filters, partition_key, order_by, descending,
                                     limit, ranges, continuation)
        rows = [json.loads(row[0]) for row in self._connect().execute(sql, params)]
        if len(rows) <= limit:
            return Page(rows, None)
        last = rows[limit - 1]
        return Page(rows[:limit], seal(query, [last[key] for key in _sort_keys(order_by)]))

    def explain(self, container: str, filters: dict[str, Any] | None = None, *,
                partition_key: str | None = None, order_by: str | None = None,
                descending: bool = False, limit: int | None = None,
                ranges: Ranges | None = None) -> list[str]:
        """SQLite's `EXPLAIN QUERY PLAN` steps of the `query` with these arguments
        (tests prove with it that a query is served by an index, not a scan)."""
        sql, params = _select(container, filters, partition_key, order_by, descending, limit, ranges)
        return self._plan(sql, params)

    def explain_page(self, container: str, filters: dict[str, Any] | None = None, *, limit: int,
                     continuation: str | None = None, partition_key: str | None = None,
                     order_by: str = "id", descending: bool = False,
                     ranges: Ranges | None = None) -> list[str]:
        """`EXPLAIN QUERY PLAN` steps of the `query_page` with these arguments."""
        sql, params, _ = _keyset(container, filters, partition_key, order_by, descending,
                                 limit, ranges, continuation)
        return self._plan(sql, params)

    def _plan(self, sql: str, params: list[Any]) -> list[str]:
        return [row[3] for row in self._connect().execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def _sort_keys(order_by: str) -> tuple[str, ...]:
    """The keyset of a paged order: the field, then `id` to break ties."""
    return ("id",) if order_by == "id" else (order_by, "id")


def _after(keys: tuple[str, ...], operator: str) -> str:
    """The WHERE clause of "after this (field, id)" in the page order. Spelled as a bound
    on the field plus a tie-break, not as a row value `(field, id) < (?, ?)`: SQLite's
    planner uses a row value on expression columns only as a filter, so each later page
    would walk every row before it, while `field <= ?` seeks straight to it."""
    if len(keys) == 1:
        return f" AND id {operator} ?"
    field = _expr(keys[0])
    return f" AND {field} {operator}= ? AND ({field} {operator} ? OR id {operator} ?)"


def _keyset(container: str, filters: dict[str, Any] | None, partition_key: str | None,
            order_by: str, descending: bool, limit: int, ranges: Ranges | None,
            continuation: str | None) -> tuple[str, list[Any], dict[str, Any]]:
    """The SELECT of a `query_page`, its parameters and the query description its tokens
    are sealed with. Resuming is a comparison on the index's trailing
    columns (`_after`), which SQLite answers with a range search of the index, however
    deep the page."""
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be an integer of at least 1")
    query = {"adapter": "sqlite", "container": container, "filters": filters or {},
             "partition": partition_key, "order": order_by, "descending": descending,
             "ranges": ranges or {}}
    keys = _sort_keys(order_by)
    if continuation is not None and ranges and order_by in ranges:
        # the position lies inside the range: its bound supersedes the range's bound on
        # the same side, and leaving both would let the planner pick the range's (a walk)
        lower, upper = ranges[order_by]
        ranges = {**ranges, order_by: (lower, None) if descending else (None, upper)}
    sql, params = _select(container, filters, partition_key, None, False, None, ranges)
    if continuation is not None:
        after = unseal(query, continuation)
        if (not isinstance(after, list) or len(after) != len(keys)
                or not all(isinstance(value, (str, int, float)) and not isinstance(value, bool)
                           for value in after)):
            raise ContinuationError()
        sql += _after(keys, "<" if descending else ">")
        params += [after[0], after[0], after[-1]] if len(keys) == 2 else after
    direction = "DESC" if descending else "ASC"
    sql += f" ORDER BY {', '.join(f'{_expr(key)} {direction}' for key in keys)} LIMIT ?"
    params.append(limit + 1)
    return sql, params, query


def _select(container: str, filters: dict[str, Any] | None, partition_key: str | None,
            order_by: str | None, descending: bool, limit: int | None,
            ranges: Ranges | None) -> tuple[str, list[Any]]:
    """The SELECT of a `query`. The container name is inlined (it is one of
    `CONTAINERS`), so the partial indexes of `INDEXES` apply."""
    if container not in CONTAINERS:
        raise ValueError(f"unknown container '{container}'")
    sql = f"SELECT body FROM documents WHERE container = '{container}'"
    params: list[Any] = []
    if partition_key is not None:
        sql += " AND pk = ?"
        params.append(str(partition_key))
    for name, value in (filters or {}).items():
        sql += f" AND {_expr(name)} = ?"
        params.append(value)
    for name, (lower, upper) in (ranges or {}).items():
        for bound, operator in ((lower, ">="), (upper, "<")):
            if bound is not None:
                sql += f" AND {_expr(name)} {operator} ?"
                params.append(bound)
    if order_by:
        sql += f" ORDER BY {_expr(order_by)} {'DESC' if descending else 'ASC'}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return sql, params
