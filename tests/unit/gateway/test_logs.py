"""Per-server logs: the writer's line format, `read_log` filters, and the control-plane
route `GET /api/servers/{name}/logs` that serves them."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import azure.functions as func
import pytest

from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.models import PackageSource, Server, ServerSpec
from shared.settings import Settings
from shared.store import SQLiteDocumentStore

import triggers.http_api as http_api
import triggers.security as security
from gateway.logs import append_line, log_path, read_log


def test_tail_and_since_filter_lines(tmp_path: Path) -> None:
    path = tmp_path / "stderr.log"
    for i in range(5):
        append_line(path, 42, f"early {i}")
    time.sleep(0.01)
    cut = datetime.now(timezone.utc)
    append_line(path, 43, "late\n")
    assert [line.split(" ", 2)[2] for line in read_log(path, tail=2)] == ["early 4", "late"]
    assert read_log(path, since=cut)[0].endswith("[43] late")
    assert len(read_log(path, tail=100)) == 6
    assert read_log(tmp_path / "missing.log") == []


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(data_dir=tmp_path)
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    spec = ServerSpec(name="echo", kind="package", package=PackageSource(command="x"))
    store.create("servers", Server(name="echo", spec=spec).model_dump(mode="json") | {"id": "echo"})
    monkeypatch.setattr(http_api, "get_store", lambda: store)
    monkeypatch.setattr(http_api, "get_settings", lambda: settings)
    monkeypatch.setattr(security, "get_store", lambda: store)  # the route authenticates (local mode)
    monkeypatch.setattr(security, "get_settings", lambda: settings)
    return settings


async def _call(name: str, params: dict[str, str]) -> func.HttpResponse:
    token = LocalIssuer(security.get_settings().auth_key_path).mint("reader", [Role.READER])
    request = func.HttpRequest("GET", f"/api/servers/{name}/logs", params=params, route_params={"name": name},
                               headers={"Authorization": f"Bearer {token}"}, body=b"")
    return await http_api.server_logs._function.get_user_function()(request)


async def test_logs_route_serves_the_gateway_log(api: Settings) -> None:
    path = log_path(api.servers_dir, "echo")
    path.parent.mkdir(parents=True)
    for i in range(3):
        append_line(path, 7, f"line {i}")
    reply = await _call("echo", {"tail": "2"})
    assert reply.status_code == 200
    body = json.loads(reply.get_body())
    assert body["name"] == "echo" and [l[-6:] for l in body["lines"]] == ["line 1", "line 2"]
    future = await _call("echo", {"since": "2999-01-01T00:00:00Z"})
    assert json.loads(future.get_body())["lines"] == []
    assert (await _call("echo", {"tail": "many"})).status_code == 400
    assert (await _call("ghost", {})).status_code == 404
