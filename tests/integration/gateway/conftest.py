"""Fixtures: a real gateway on uvicorn (in a thread, on a free 127.0.0.1 port) over a
SQLite store in a temporary directory.

The transport and lifecycle tests here are protocol rigs, so `gateway` and
`make_gateway` run with `MCPAAS_AUTH_MODE=none` (every caller an anonymous Admin)
unless a test overrides `auth_mode`; authentication, policy, tenancy and rate-limit
tests (test_auth*.py, test_policy*.py, test_tenancy*.py, test_ratelimit*.py) start
theirs in `local` mode with minted tokens (`tests.integration.gateway.authn`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from pathlib import Path

import pytest

from shared.auth.principal import AuthMode
from shared.settings import Settings
from shared.store import SQLiteDocumentStore

from gateway.app import create_app
from tests.integration.gateway.helpers import GatewayUnderTest, ThreadedServer

# authentication off: these fixtures serve protocol rigs only (see the module docstring)
PROTOCOL_RIG_AUTH = AuthMode.NONE
# the test upstreams of `remote` servers listen on loopback, which the remote address
# policy refuses by default (shared.egress); test_clearance_connect.py starts without it
LOOPBACK_REMOTES = ["127.0.0.0/8"]


def shown_to_children(tmp_path: Path) -> list[str]:
    """`sandbox_read_paths` showing the test's scripts (in `tmp_path`) to sandboxed
    children, which run as other uids: pytest makes `tmp_path` mode 0700."""
    tmp_path.chmod(0o755)
    return [str(tmp_path)]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteDocumentStore:
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


@pytest.fixture
def gateway(tmp_path: Path, store: SQLiteDocumentStore) -> Iterator[GatewayUnderTest]:
    settings = Settings(data_dir=tmp_path / "data", auth_mode=PROTOCOL_RIG_AUTH,
                        sandbox_read_paths=shown_to_children(tmp_path),
                        remote_allowed_networks=LOOPBACK_REMOTES)
    app = create_app(settings, store)
    with ThreadedServer(app) as server:
        yield GatewayUnderTest(server.url, store, settings, app)


@pytest.fixture
def make_gateway(tmp_path: Path,
                 store: SQLiteDocumentStore) -> Iterator[Callable[..., GatewayUnderTest]]:
    """Start gateways with Settings overrides (e.g. `gateway_max_body_bytes=...`); every
    one started is stopped (children included) at teardown."""
    with ExitStack() as stack:
        def start(**overrides: Any) -> GatewayUnderTest:
            settings = Settings(**{"data_dir": tmp_path / "data", "auth_mode": PROTOCOL_RIG_AUTH,
                                   "sandbox_read_paths": shown_to_children(tmp_path),
                                   "remote_allowed_networks": LOOPBACK_REMOTES, **overrides})
            app = create_app(settings, store)
            server = stack.enter_context(ThreadedServer(app))
            return GatewayUnderTest(server.url, store, settings, app)
        yield start
