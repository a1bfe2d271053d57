"""Small client helpers for the end-to-end tests."""

from __future__ import annotations

import sqlite3
import json
import time
from pathlib import Path

import httpx


def wait_status(api: str, name: str, statuses: set[str], timeout: float = 30.0,
                revision: int | None = None) -> dict:
    """Poll `GET /api/servers/{name}` until its status is in `statuses` (and at `revision`)."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{api}/api/servers/{name}", timeout=5)
        if response.status_code == 200:
            body = response.json()
            if body["status"] in statuses and (revision is None or body["revision"] == revision):
                return body
        time.sleep(0.1)
    raise TimeoutError(f"{name} not in {statuses} after {timeout} s; last: {body}")


def wait_gone(api: str, name: str, timeout: float = 30.0) -> None:
    """Poll until `GET /api/servers/{name}` answers 404."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{api}/api/servers/{name}", timeout=5).status_code == 404:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{name} still exists after {timeout} s")


def stored(data_dir: Path, container: str) -> list[dict]:
    """Every document of `container` in the platform's SQLite store, read directly."""
    with sqlite3.connect(data_dir / "store.sqlite") as conn:
        rows = conn.execute("SELECT body FROM documents WHERE container = ?", (container,)).fetchall()
    return [json.loads(row[0]) for row in rows]
