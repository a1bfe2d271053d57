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


def _index_ddl() -> list[str]:
    """Partial expression indexes of `INDEXES`: each covers its container's rows only,
    so writes to other containers pay nothing for them. The leading `container` column
    lets the planner see the index as at least as selective as the primary key."""
    return [f"CREATE INDEX IF NOT EXISTS ix_{container}_{'_'.join(fields)} ON documents "
            f"(container, {', '.join(_expr(field) for field in fields)}) WHERE container = '{container}'"
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

    def explain(self, container: str, filters: dict[str, Any] | None = None, *,
                partition_key: str | None = None, order_by: str | None = None,
                descending: bool = False, limit: int | None = None,
                ranges: Ranges | None = None) -> list[str]:
        """SQLite's `EXPLAIN QUERY PLAN` steps of the `query` with these arguments
        (tests prove with it that a query is served by an index, not a scan)."""
        sql, params = _select(container, filters, partition_key, order_by, descending, limit, ranges)
        return [row[3] for row in self._connect().execute(f"EXPLAIN QUERY PLAN {sql}", params)]


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
