"""Small client helpers for the end-to-end tests."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from shared.settings import Settings
from shared.store import DocumentStore, open_store

# data dir of each running test platform -> the MCPAAS_* store settings it was started with
_STORE_ENV: dict[Path, dict[str, str]] = {}


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


def register_store(data_dir: Path, store_env: dict[str, str]) -> None:
    """Remember the `MCPAAS_*` store variables (empty: SQLite) of the platform at `data_dir`."""
    _STORE_ENV[Path(data_dir)] = dict(store_env)


def platform_store(data_dir: Path) -> DocumentStore:
    """The document store the platform at `data_dir` uses, opened through the port."""
    env = _STORE_ENV.get(Path(data_dir), {})
    fields = {key.removeprefix("MCPAAS_").lower(): value for key, value in env.items()}
    return open_store(Settings(data_dir=data_dir, **fields))


def stored(data_dir: Path, container: str) -> list[dict]:
    """Every document of `container` in the platform's store (SQLite or Cosmos)."""
    return platform_store(data_dir).query(container)
