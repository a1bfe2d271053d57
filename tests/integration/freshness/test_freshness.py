"""The daily freshness check and `GET /api/freshness` served by devhost (NFR-OPS-004)."""

from __future__ import annotations

import time
from datetime import date

import azure.durable_functions as df
import azure.functions as func
import httpx
import pytest

from devhost.host import create_app
from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.keyfiles import host_key
from shared.settings import get_settings
from shared.store import get_store
from tests.integration.devhost.conftest import free_port, serve
from triggers import freshness
from triggers.freshness import bp

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(bp)


@pytest.fixture
def site(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCPAAS_API_PORT", str(port))
    get_settings.cache_clear()
    get_store.cache_clear()
    server, thread = serve(create_app(app, get_settings()), port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    get_settings.cache_clear()
    get_store.cache_clear()


def audited() -> list[dict]:
    return get_store().query("audit", {"action": "docs.freshness"})


def test_daily_check_audits_each_stale_item_once_and_the_api_lists_them(site, monkeypatch):
    reader = LocalIssuer(get_settings().auth_key_path).mint("reader", [Role.READER])
    api = httpx.Client(base_url=site, headers={"Authorization": f"Bearer {reader}"}, timeout=30)
    runtime = httpx.Client(base_url=site, headers={"x-functions-key": host_key(get_settings())}, timeout=30)

    monkeypatch.setattr(freshness, "today", lambda: date(2027, 6, 1))  # the check's clock
    assert runtime.post("/admin/functions/freshness_check").status_code == 202
    deadline = time.monotonic() + 10
    while not audited():
        assert time.monotonic() < deadline, "the check audited nothing"
        time.sleep(0.05)
    time.sleep(0.3)  # let the run finish its writes
    first = len(audited())
    assert runtime.post("/admin/functions/freshness_check").status_code == 202  # the next day's run
    time.sleep(0.5)
    assert len(audited()) == first  # nothing audited twice
    listed = api.get("/api/freshness", params={"as_of": "2027-06-01", "stale": "true"}).json()
    assert listed["max_age_days"] == 30 and listed["items"]
    assert sorted(e["entity"] for e in audited()) == sorted(f"{i['kind']}/{i['id']}" for i in listed["items"])
    assert "catalog/echo" in {e["entity"] for e in audited()}

    today = api.get("/api/freshness", params={"as_of": "2026-12-01"}).json()
    assert today["items"] and not [i for i in today["items"] if i["stale"]]
    bad = api.get("/api/freshness", params={"as_of": "yesterday"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "as_of"
    assert httpx.get(f"{site}/api/freshness").status_code == 401
