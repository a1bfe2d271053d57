"""Fixtures: a real gateway on uvicorn (in a thread, on a free 127.0.0.1 port) over a
SQLite store in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.store import SQLiteDocumentStore

from gateway.app import create_app
from tests.integration.gateway.helpers import GatewayUnderTest, ThreadedServer


@pytest.fixture
def store(tmp_path: Path) -> SQLiteDocumentStore:
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


@pytest.fixture
def gateway(tmp_path: Path, store: SQLiteDocumentStore) -> Iterator[GatewayUnderTest]:
    settings = Settings(data_dir=tmp_path / "data")
    app = create_app(settings, store)
    with ThreadedServer(app) as server:
        yield GatewayUnderTest(server.url, store, settings, app)
