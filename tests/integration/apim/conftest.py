"""Fixtures: a seeded `FakeApim` wired into `activities.apim.connect`, and devhost serving
the APIM functions in process (so the fake is reachable) with an Admin client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from activities import apim
from devhost.host import create_app
from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.keyfiles import host_key
from shared.settings import get_settings
from shared.store import get_store
from tests.fakes.apim import SERVICE_ID, FakeApim, fake_connect, seed
from tests.integration.apim.app import app
from tests.integration.devhost.conftest import free_port, serve

TERMINAL = {"Completed", "Failed", "Terminated"}


@pytest.fixture
def fake_apim(tmp_path, monkeypatch) -> Iterator[FakeApim]:
    """A Developer-tier service configured with 5 APIs (`seed`), and settings pointing at it."""
    fake = FakeApim()
    seed(fake, apis=5)
    monkeypatch.setattr(apim, "connect", fake_connect(fake))
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCPAAS_APIM_SERVICE_ID", SERVICE_ID)
    monkeypatch.setenv("MCPAAS_APIM_POLL_SECONDS", "0.05")
    _clear()
    yield fake
    _clear()


def _clear() -> None:
    get_settings.cache_clear()
    get_store.cache_clear()
    apim._snapshot.cache_clear()


@dataclass
class ControlPlane:
    """devhost serving the APIM functions: `api` (Admin token), `runtime` (host key)."""

    api: httpx.Client
    runtime: httpx.Client

    def token(self, *roles: Role) -> str:
        return LocalIssuer(get_settings().auth_key_path).mint("someone", list(roles))

    def wait(self, operation_id: str, timeout: float = 30) -> dict:
        """Poll `GET /api/operations/{id}` until the operation is finished."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.api.get(f"/api/operations/{operation_id}")
            body = response.json() if response.status_code == 200 else {}
            if body.get("runtimeStatus") in TERMINAL:
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.05)

    def snapshot(self) -> dict:
        """Run the scheduled export now (the host's admin API) and return the newest snapshot."""
        before = self.api.get("/api/apim/snapshots").json()["items"]
        assert self.runtime.post("/admin/functions/apim_export").status_code == 202
        deadline = time.monotonic() + 15
        while True:
            items = self.api.get("/api/apim/snapshots").json()["items"]
            if items and items != before:
                return items[0]
            assert time.monotonic() < deadline, "no snapshot taken"
            time.sleep(0.05)


@pytest.fixture
def control_plane(fake_apim, monkeypatch) -> Iterator[ControlPlane]:
    port = free_port()
    monkeypatch.setenv("MCPAAS_API_PORT", str(port))  # the durable client binding points here
    get_settings.cache_clear()
    settings = get_settings()
    server, thread = serve(create_app(app, settings), port)
    token = LocalIssuer(settings.auth_key_path).mint("ops-admin", [Role.ADMIN])
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as api, \
            httpx.Client(base_url=base, timeout=30, headers={"x-functions-key": host_key(settings)}) as runtime:
        yield ControlPlane(api, runtime)
    server.should_exit = True
    thread.join(10)
