"""The guidance triggers called in process, as the Functions host would, on a fresh data dir."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.models import PackageSource, Revision, Server, ServerSpec
from shared.settings import get_settings
from shared.store import DocumentStore, get_store


@dataclass
class Api:
    """Calls a trigger with a local token for a user with roles and groups."""

    store: DocumentStore
    data_dir: Path

    async def call(self, trigger: Any, method: str, url: str, *, roles: tuple[Role, ...] = (Role.ADMIN,),
                   user: str = "alice", groups: tuple[str, ...] = (), body: Any = None,
                   params: dict[str, str] | None = None, route: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> func.HttpResponse:
        token = LocalIssuer(get_settings().auth_key_path).mint(user, roles, groups=groups)
        request = func.HttpRequest(method, f"http://127.0.0.1:7071{url}", params=params or {},
                                   route_params=route or {},
                                   headers={"Authorization": f"Bearer {token}", **(headers or {})},
                                   body=json.dumps(body).encode() if body is not None else b"")
        return await trigger._function.get_user_function()(request)

    def add_server(self, name: str, *, revisions: int = 1, owner_team: str = "shop",
                   env: dict[str, str] | None = None) -> Server:
        spec = ServerSpec(name=name, kind="package", owner_team=owner_team,
                          package=PackageSource(command="mcp-server-time", env=env or {}))
        server = Server(name=name, spec=spec, status="Running", revision=revisions, latest_revision=revisions)
        self.store.upsert("servers", server.model_dump(mode="json") | {"id": name})
        for number in range(1, revisions + 1):
            revision = Revision(server=name, number=number, spec=spec, actor="alice", operation_id=f"op{number}")
            self.store.upsert("revisions", revision.model_dump(mode="json") | {"id": f"{name}.{number}"})
        return server

    def audit(self, action: str) -> list[dict]:
        return [doc for doc in self.store.query("audit", order_by="time") if doc["action"] == action]


@pytest.fixture
def api(tmp_path, monkeypatch) -> Api:
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MCPAAS_AUTH_MODE", "local")
    monkeypatch.setenv("MCPAAS_FEEDBACK_RATE_LIMIT", "3/minute")
    get_settings.cache_clear()
    get_store.cache_clear()
    yield Api(get_store(), tmp_path)
    get_settings.cache_clear()
    get_store.cache_clear()


def body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())
