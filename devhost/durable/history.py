"""SQLite persistence of durable orchestrations (instances, history, inbox, pending work).

One file (``Settings.durable_path``), WAL mode, one connection guarded by a lock.
Every state change that must survive a crash happens in a single transaction:

* an episode commit appends history, consumes inbox messages and records new work
  (activities to run, timers to fire) atomically, so a process killed mid-replay
  simply replays again and never duplicates history events;
* an activity result or a fired timer moves from ``work`` to ``inbox`` atomically, so
  an activity whose completion was not recorded is re-run after a restart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from azure.durable_functions.models.history import HistoryEventType

from devhost.durable.events import Event, fmt

TERMINAL = frozenset({"Completed", "Failed", "Terminated"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances(
  instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, execution_id TEXT NOT NULL,
  status TEXT NOT NULL, input TEXT, output TEXT, custom_status TEXT,
  created_time TEXT NOT NULL, updated_time TEXT NOT NULL,
  parent_instance_id TEXT, parent_task_id INTEGER, parent_execution_id TEXT);
CREATE TABLE IF NOT EXISTS history(
  instance_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
  PRIMARY KEY(instance_id, seq));
CREATE TABLE IF NOT EXISTS inbox(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, event TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS inbox_by_instance ON inbox(instance_id, seq);
CREATE TABLE IF NOT EXISTS work(
  instance_id TEXT NOT NULL, execution_id TEXT NOT NULL, task_id INTEGER NOT NULL,
  kind TEXT NOT NULL, name TEXT, input TEXT, fire_at TEXT,
  PRIMARY KEY(instance_id, task_id));
"""


class InstanceExists(Exception):
    """Raised by :meth:`DurableStore.create_instance` for a live (non-terminal) instance."""


@dataclass(frozen=True)
class Instance:
    """One row of ``instances``; JSON columns are kept as JSON text (or None)."""

    instance_id: str
    name: str
    execution_id: str
    status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: str
    updated_time: str
    parent_instance_id: str | None
    parent_task_id: int | None
    parent_execution_id: str | None

    @property
    def terminal(self) -> bool:
        """True once Completed, Failed or Terminated."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class WorkItem:
    """Pending work: ``kind`` is ``activity`` (name, input) or ``timer`` (fire_at)."""

    instance_id: str
    execution_id: str
    task_id: int
    kind: str
    name: str | None = None
    input: str | None = None
    fire_at: str | None = None


@dataclass(frozen=True)
class NewInstance:
    """An instance to create (a start request or a sub-orchestration)."""

    instance_id: str
    name: str
    input: str | None
    first_event: Event
    parent_instance_id: str | None = None
    parent_task_id: int | None = None
    parent_execution_id: str | None = None


@dataclass
class EpisodeCommit:
    """Everything one replay episode changes, applied in one transaction.

    ``consumed_upto`` is the last inbox seq fed to the orchestrator; ``restart_event`` is
    set for continue-as-new (history is wiped and the event queued for a new execution);
    ``notify`` is (parent id, event) for a finished sub-orchestration; ``self_messages``
    are queued back to this instance for the next episode.
    """

    instance_id: str
    execution_id: str
    consumed_upto: int
    events: list[Event]
    status: str
    output: str | None = None
    custom_status: str | None = None
    work: list[WorkItem] = field(default_factory=list)
    cancel_task_ids: list[int] = field(default_factory=list)
    children: list[NewInstance] = field(default_factory=list)
    notify: tuple[str, Event] | None = None
    self_messages: list[Event] = field(default_factory=list)
    restart_event: Event | None = None


class DurableStore:
    """Thread-safe access to the durable SQLite file.

    Args:
        path: the SQLite file; its directory is created if missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the event loop and activity threads; the lock
        # serialises use, and SQLite's own transactions give atomicity.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _txn(self) -> _Txn:
        return _Txn(self)

    # ---- instances -------------------------------------------------------------------
    def create_instance(self, new: NewInstance, now: datetime) -> None:
        """Create (or replace a terminal) instance and queue its ExecutionStarted.

        Raises:
            InstanceExists: an instance with that id is Pending or Running.
        """
        with self._txn() as db:
            self._create_in(db, new, now)

    def _create_in(self, db: sqlite3.Connection, new: NewInstance, now: datetime) -> None:
        row = db.execute("SELECT status FROM instances WHERE instance_id=?",
                         (new.instance_id,)).fetchone()
        if row is not None and row["status"] not in TERMINAL:
            raise InstanceExists(new.instance_id)
        self._wipe(db, new.instance_id)
        stamp = fmt(now)
        db.execute(
            "INSERT OR REPLACE INTO instances VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
            (new.instance_id, new.name, uuid.uuid4().hex, "Pending", new.input, None, None,
             stamp, stamp, new.parent_instance_id, new.parent_task_id,
             new.parent_execution_id))
        db.execute("INSERT INTO inbox(instance_id, event) VALUES(?,?)",
                   (new.instance_id, json.dumps(new.first_event)))

    @staticmethod
    def _wipe(db: sqlite3.Connection, instance_id: str) -> None:
        for table in ("history", "inbox", "work"):
            db.execute(f"DELETE FROM {table} WHERE instance_id=?", (instance_id,))

    def get_instance(self, instance_id: str) -> Instance | None:
        """Return the instance row, or None when unknown."""
        with self._lock:
            row = self._db.execute("SELECT * FROM instances WHERE instance_id=?",
                                   (instance_id,)).fetchone()
        return Instance(**dict(row)) if row else None

    def list_instances(self) -> list[Instance]:
        """Every instance, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM instances ORDER BY created_time DESC").fetchall()
        return [Instance(**dict(r)) for r in rows]

    def history(self, instance_id: str) -> list[Event]:
        """The committed history of the current execution, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event FROM history WHERE instance_id=? ORDER BY seq",
                (instance_id,)).fetchall()
        return [json.loads(r["event"]) for r in rows]

    def execution_started(self, instance_id: str) -> Event | None:
        """The ExecutionStarted event of the current execution, or None (one indexed row)."""
        with self._lock:
            row = self._db.execute(
                "SELECT event FROM history WHERE instance_id=? AND json_extract(event, '$.EventType')=? "
                "ORDER BY seq LIMIT 1", (instance_id, int(HistoryEventType.EXECUTION_STARTED))).fetchone()
        return json.loads(row["event"]) if row else None

    # ---- inbox -----------------------------------------------------------------------
    def enqueue(self, instance_id: str, event: Event) -> str:
        """Queue a message for a live instance.

        Returns ``"ok"``, ``"missing"`` (unknown instance) or ``"gone"`` (terminal).
        """
        with self._txn() as db:
            row = db.execute("SELECT status FROM instances WHERE instance_id=?",
                             (instance_id,)).fetchone()
            if row is None:
                return "missing"
            if row["status"] in TERMINAL:
                return "gone"
            db.execute("INSERT INTO inbox(instance_id, event) VALUES(?,?)",
                       (instance_id, json.dumps(event)))
            return "ok"

    def inbox(self, instance_id: str) -> list[tuple[int, Event]]:
        """Queued messages of one instance as (seq, event), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event FROM inbox WHERE instance_id=? ORDER BY seq",
                (instance_id,)).fetchall()
        return [(r["seq"], json.loads(r["event"])) for r in rows]

    def instances_with_inbox(self) -> list[str]:
        """Ids of instances that have queued messages, in arrival order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT instance_id, MIN(seq) AS first FROM inbox "
                "GROUP BY instance_id ORDER BY first").fetchall()
        return [r["instance_id"] for r in rows]

    def drop_inbox(self, instance_id: str, upto: int) -> None:
        """Discard messages (e.g. for a terminal instance)."""
        with self._txn() as db:
            db.execute("DELETE FROM inbox WHERE instance_id=? AND seq<=?", (instance_id, upto))

    # ---- episodes --------------------------------------------------------------------
    def commit_episode(self, c: EpisodeCommit, now: datetime) -> bool:
        """Apply one episode atomically; False if the execution changed meanwhile."""
        with self._txn() as db:
            row = db.execute("SELECT execution_id FROM instances WHERE instance_id=?",
                             (c.instance_id,)).fetchone()
            if row is None or row["execution_id"] != c.execution_id:
                return False
            db.execute("DELETE FROM inbox WHERE instance_id=? AND seq<=?",
                       (c.instance_id, c.consumed_upto))
            self._append(db, c.instance_id, c.events)
            for w in c.work:
                db.execute("INSERT OR REPLACE INTO work VALUES(?,?,?,?,?,?,?)",
                           (w.instance_id, w.execution_id, w.task_id, w.kind, w.name,
                            w.input, w.fire_at))
            for task_id in c.cancel_task_ids:
                db.execute("DELETE FROM work WHERE instance_id=? AND task_id=?",
                           (c.instance_id, task_id))
            if c.status in TERMINAL or c.restart_event is not None:
                # Nothing left to wait for; in-flight activities find no row and drop.
                db.execute("DELETE FROM work WHERE instance_id=?", (c.instance_id,))
            db.execute(
                "UPDATE instances SET status=?, output=?, custom_status=?, updated_time=? "
                "WHERE instance_id=?",
                (c.status, c.output, c.custom_status, fmt(now), c.instance_id))
            for child in c.children:
                self._create_in(db, child, now)
            if c.notify is not None:
                self._notify_parent(db, *c.notify)
            for event in c.self_messages:
                db.execute("INSERT INTO inbox(instance_id, event) VALUES(?,?)",
                           (c.instance_id, json.dumps(event)))
            if c.restart_event is not None:
                self._restart(db, c.instance_id, c.restart_event)
            return True

    @staticmethod
    def _append(db: sqlite3.Connection, instance_id: str, events: list[Event]) -> None:
        start = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM history WHERE instance_id=?",
                           (instance_id,)).fetchone()[0]
        db.executemany("INSERT INTO history VALUES(?,?,?)",
                       [(instance_id, start + i, json.dumps(e)) for i, e in enumerate(events)])

    @staticmethod
    def _notify_parent(db: sqlite3.Connection, parent_id: str, event: Event) -> None:
        row = db.execute("SELECT status FROM instances WHERE instance_id=?",
                         (parent_id,)).fetchone()
        if row is not None and row["status"] not in TERMINAL:
            db.execute("INSERT INTO inbox(instance_id, event) VALUES(?,?)",
                       (parent_id, json.dumps(event)))

    @staticmethod
    def _restart(db: sqlite3.Connection, instance_id: str, event: Event) -> None:
        db.execute("DELETE FROM history WHERE instance_id=?", (instance_id,))
        db.execute("UPDATE instances SET execution_id=?, input=? WHERE instance_id=?",
                   (uuid.uuid4().hex, event.get("Input"), instance_id))
        db.execute("INSERT INTO inbox(instance_id, event) VALUES(?,?)",
                   (instance_id, json.dumps(event)))

    # ---- work ------------------------------------------------------------------------
    def pending_activities(self) -> list[WorkItem]:
        """Activities scheduled but with no recorded completion."""
        return self._work("SELECT * FROM work WHERE kind='activity' ORDER BY rowid")

    def due_timers(self, now: datetime) -> list[WorkItem]:
        """Timers whose fire time is at or before ``now``."""
        return self._work("SELECT * FROM work WHERE kind='timer' AND fire_at<=? "
                          "ORDER BY fire_at", (fmt(now),))

    def next_timer_at(self) -> str | None:
        """Earliest pending fire time (formatted), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(fire_at) FROM work WHERE kind='timer'").fetchone()
        return row[0]

    def _work(self, sql: str, args: tuple[Any, ...] = ()) -> list[WorkItem]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [WorkItem(**dict(r)) for r in rows]

    def complete_work(self, item: WorkItem, event: Event) -> bool:
        """Move a finished activity / fired timer from ``work`` to the inbox.

        Returns False (and records nothing) when the work was withdrawn meanwhile
        (instance finished, terminated, restarted or the timer cancelled).
        """
        with self._txn() as db:
            gone = db.execute(
                "DELETE FROM work WHERE instance_id=? AND task_id=? AND execution_id=?",
                (item.instance_id, item.task_id, item.execution_id)).rowcount == 0
            if gone:
                return False
            db.execute("INSERT INTO inbox(instance_id, event) VALUES(?,?)",
                       (item.instance_id, json.dumps(event)))
            return True


class _Txn:
    """``with store._txn() as db``: lock + BEGIN IMMEDIATE … COMMIT/ROLLBACK."""

    def __init__(self, store: DurableStore) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Connection:
        self._store._lock.acquire()
        self._store._db.execute("BEGIN IMMEDIATE")
        return self._store._db

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            self._store._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._store._lock.release()

