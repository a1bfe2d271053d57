"""Small client helpers for the end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from shared.settings import Settings
from shared.store import DocumentStore, open_store

# data dir of each running test platform -> the MCPAAS_* store settings it was started with
_STORE_ENV: dict[Path, dict[str, str]] = {}
# base URL of each running control plane or gateway -> the admin credential headers its tests send
_AUTH: dict[str, dict[str, str]] = {}


def register_auth(base_url: str, headers: dict[str, str]) -> None:
    """Send `headers` (an admin token) with every `authed` call to a URL under `base_url`."""
    _AUTH[base_url.rstrip("/")] = dict(headers)


class _Authed:
    """httpx's module functions (`get`, `post`, `put`, `delete`, `request`), adding the
    registered admin headers of the platform a URL belongs to (explicit headers win)."""

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        base = next((base for base in _AUTH if url.startswith(base + "/")), None)
        headers = {**(_AUTH[base] if base else {}), **(kwargs.pop("headers", None) or {})}
        return httpx.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


authed = _Authed()


def wait_status(api: str, name: str, statuses: set[str], timeout: float = 30.0,
                revision: int | None = None) -> dict:
    """Poll `GET /api/servers/{name}` until its status is in `statuses` (and at `revision`)."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = authed.get(f"{api}/api/servers/{name}", timeout=5)
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
        if authed.get(f"{api}/api/servers/{name}", timeout=5).status_code == 404:
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


def lifecycle_events(data_dir: Path) -> list[dict]:
    """The platform's audit events of lifecycle operations (accepted/succeeded/failed),
    leaving out authorization decisions."""
    return [event for event in stored(data_dir, "audit") if event["result"] in ("accepted", "succeeded", "failed")]


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str], **options) -> AsyncIterator[Client]:
    """An `mcp.Client` on the Streamable HTTP endpoint `url` that sends `headers` (e.g.
    `{"Authorization": "Bearer ..."}`) with every request; `options` go to `Client`.
    The HTTP client is closed with it."""
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), **options) as client:
            yield client
