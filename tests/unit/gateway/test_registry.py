"""Unit tests of `ServerRegistry` (server configs read from the store) and session status."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import NotFoundError, UnprocessableError
from shared.models import (ContainerSource, PackageSource, RemoteSource, Server, ServerSpec)
from shared.secrets import create_secret_store
from shared.settings import Settings
from shared.store import SQLiteDocumentStore

from gateway.upstreams.registry import ServerRegistry
from gateway.children.sandbox import Sandbox
from gateway.children.stdio import Launcher
from gateway.sessions.supervisor import SessionRegistry

PKG = ServerSpec(name="pkg", kind="package", package=PackageSource(command="x"))


def _put(store: SQLiteDocumentStore, spec: ServerSpec, status: str = "Running") -> None:
    doc = Server(name=spec.name, spec=spec, status=status).model_dump(mode="json")
    store.upsert("servers", doc | {"id": spec.name})


@pytest.fixture
def store(tmp_path: Path) -> SQLiteDocumentStore:
    return SQLiteDocumentStore(tmp_path / "s.sqlite")


@pytest.mark.parametrize("status", ["Pending", "Deploying", "Running", "Error"])
@pytest.mark.asyncio
async def test_serves_enabled_not_stopped(store: SQLiteDocumentStore, status: str) -> None:
    _put(store, PKG, status)
    server = await ServerRegistry(store).lookup("pkg")
    assert server.spec.package.command == "x"


@pytest.mark.asyncio
async def test_remote_is_served(store: SQLiteDocumentStore) -> None:
    _put(store, ServerSpec(name="r", kind="remote", remote=RemoteSource(url="http://h/mcp")))
    assert (await ServerRegistry(store).lookup("r")).spec.remote.url == "http://h/mcp"


@pytest.mark.asyncio
async def test_not_served(store: SQLiteDocumentStore) -> None:
    _put(store, PKG.model_copy(update={"name": "off", "enabled": False}))
    _put(store, PKG.model_copy(update={"name": "stopped"}), "Stopped")
    store.upsert("servers", {"id": "junk", "name": "junk", "spec": {"kind": "nope"}})
    registry = ServerRegistry(store)
    for name in ("absent", "off", "stopped", "junk"):
        with pytest.raises(NotFoundError):
            await registry.lookup(name)


@pytest.mark.asyncio
async def test_container_is_unprocessable(store: SQLiteDocumentStore) -> None:
    _put(store, ServerSpec(name="c", kind="container", container=ContainerSource(image="i")))
    with pytest.raises(UnprocessableError, match="no Kubernetes target configured"):
        await ServerRegistry(store).lookup("c")


@pytest.mark.asyncio
async def test_cache_and_invalidate(store: SQLiteDocumentStore) -> None:
    registry = ServerRegistry(store, ttl=60)
    with pytest.raises(NotFoundError):
        await registry.lookup("pkg")
    _put(store, PKG)
    with pytest.raises(NotFoundError):  # the negative read is still cached
        await registry.lookup("pkg")
    registry.invalidate("pkg")
    assert (await registry.lookup("pkg")).name == "pkg"


@pytest.mark.asyncio
async def test_zero_ttl_reads_every_time(store: SQLiteDocumentStore) -> None:
    registry = ServerRegistry(store, ttl=0)
    _put(store, PKG)
    await registry.lookup("pkg")
    store.delete("servers", "pkg", "pkg")
    with pytest.raises(NotFoundError):
        await registry.lookup("pkg")


@pytest.mark.asyncio
async def test_ping(store: SQLiteDocumentStore) -> None:
    await ServerRegistry(store).ping()


def test_status_without_sessions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sessions = SessionRegistry(Launcher(Sandbox(settings), create_secret_store(settings)))
    assert sessions.status("a", known=True)["status"] == "idle"
    sessions.record_error("a", "boom")
    assert sessions.status("a", known=False) == {
        "name": "a", "status": "unknown", "sessions": 0, "pids": [], "mounted_at": None, "restarts": 0,
        "last_error": "boom"}
