"""The server lookup under load (issue 15, docs/scale.md): concurrent misses share one
store read, an invalidation wins over a read already under way, and the cache is bounded."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.models import PackageSource, Server, ServerSpec
from shared.store import SQLiteDocumentStore

from gateway.upstreams.registry import ServerRegistry

pytestmark = pytest.mark.asyncio


class CountingStore(SQLiteDocumentStore):
    """The SQLite store, counting reads per document id; `gate`, when set, holds every
    read until it is set (a slow store)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: dict[str, int] = {}
        self.gate: threading.Event | None = None

    def read(self, container: str, id: str, partition_key: str) -> dict[str, Any]:
        self.reads[id] = self.reads.get(id, 0) + 1
        if self.gate is not None:
            self.gate.wait(10)
        return super().read(container, id, partition_key)


def _put(store: SQLiteDocumentStore, name: str, command: str = "x") -> None:
    spec = ServerSpec(name=name, kind="package", package=PackageSource(command=command))
    store.upsert("servers", Server(name=name, spec=spec, status="Running").model_dump(mode="json") | {"id": name})


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "s.sqlite")


async def test_concurrent_misses_share_one_read(store: CountingStore) -> None:
    _put(store, "busy")
    registry = ServerRegistry(store)
    store.gate = threading.Event()
    lookups = [asyncio.create_task(registry.lookup("busy")) for _ in range(200)]
    await asyncio.sleep(0.05)
    store.gate.set()
    servers = await asyncio.gather(*lookups)
    assert {s.name for s in servers} == {"busy"} and store.reads == {"busy": 1}


async def test_a_cancelled_request_leaves_the_read_to_the_others(store: CountingStore) -> None:
    _put(store, "busy")
    registry = ServerRegistry(store)
    store.gate = threading.Event()
    first, second = (asyncio.create_task(registry.lookup("busy")) for _ in range(2))
    await asyncio.sleep(0.05)
    first.cancel()
    store.gate.set()
    assert (await second).name == "busy" and store.reads == {"busy": 1}


async def test_invalidation_wins_over_a_read_under_way(store: CountingStore) -> None:
    _put(store, "changing", "old")
    registry = ServerRegistry(store, ttl=60)
    store.gate = threading.Event()
    stale = asyncio.create_task(registry.lookup("changing"))
    await asyncio.sleep(0.05)
    _put(store, "changing", "new")
    registry.invalidate("changing")  # the control plane changed it (admin route)
    store.gate.set()
    await stale
    # the read that began before the change was not cached: the next lookup reads again
    assert (await registry.lookup("changing")).spec.package.command == "new"
    assert store.reads == {"changing": 2}


async def test_the_cache_keeps_the_newest_names_only(store: CountingStore) -> None:
    for name in "abcde":
        _put(store, name)
    registry = ServerRegistry(store, ttl=60, max_entries=3)
    for name in "abcde":
        await registry.lookup(name)
    await registry.lookup("e")  # cached
    await registry.lookup("a")  # evicted: read again
    assert store.reads == {"a": 2, "b": 1, "c": 1, "d": 1, "e": 1}
