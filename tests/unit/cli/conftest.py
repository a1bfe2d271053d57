"""A fake control plane behind `httpx.MockTransport`, and a runner wired to it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.state import CliState

PROBLEM = {"Content-Type": "application/problem+json"}


def server_doc(name: str, spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A Server JSON document as the control plane returns it."""
    doc = {"name": name, "spec": spec, "status": "Pending", "status_reason": "",
           "revision": 0, "latest_revision": 1, "endpoint": None, "operation_id": "op-1",
           "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}
    doc.update(fields)
    return doc


@dataclass
class FakeControlPlane:
    """In-memory control plane; `script[name]` lists the states successive GETs reveal."""

    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    script: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    revisions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    down: bool = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        self.requests.append(request)
        parts = request.url.path.strip("/").split("/")  # api, servers, name?, sub?
        if parts[:2] != ["api", "servers"]:
            return _problem(404, "Not Found", "no such route")
        if len(parts) == 2:
            return self._collection(request)
        name = parts[2]
        if len(parts) == 4 and parts[3] == "revisions":
            return httpx.Response(200, json={"items": self.revisions.get(name, [])})
        return self._item(request, name)

    def _collection(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"items": list(self.servers.values())})
        spec = json.loads(request.content)
        if spec["name"] in self.servers:
            return _problem(409, "Conflict", f"server {spec['name']} exists")
        return self._accept(spec, server_doc(spec["name"], spec), "op-1")

    def _item(self, request: httpx.Request, name: str) -> httpx.Response:
        current = self.servers.get(name)
        if current is None:
            return _problem(404, "Not Found", f"server {name} not found")
        if request.method == "GET":
            steps = self.script.get(name)
            if steps:
                current.update(steps.pop(0))
            if current.get("_gone"):
                del self.servers[name]
                return _problem(404, "Not Found", f"server {name} not found")
            return httpx.Response(200, json=current)
        if request.method == "PUT":
            spec = json.loads(request.content)
            updated = dict(current, spec=spec, status="Running",
                           latest_revision=current["latest_revision"] + 1, operation_id="op-2")
            return self._accept(spec, updated, "op-2")
        if request.method == "DELETE":
            return httpx.Response(202, headers={"Location": "/api/operations/op-del"},
                                  json={"server": current, "operation_id": "op-del"})
        return _problem(405, "Method Not Allowed", request.method)

    def _accept(self, spec: dict, doc: dict, op: str) -> httpx.Response:
        self.servers[spec["name"]] = doc
        return httpx.Response(202, headers={"Location": f"/api/operations/{op}"},
                              json={"server": dict(doc), "operation_id": op})


def _problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, headers=PROBLEM,
                          json={"type": "about:blank", "title": title, "status": status,
                                "detail": detail, **extra})


class FakeClock:
    """Monotonic clock advanced only by `sleep`, so waits are instant in tests."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def plane() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def invoke(plane: FakeControlPlane, clock: FakeClock):
    """Run `mcpaas ARGS` against the fake control plane; returns the click Result."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, transport: httpx.BaseTransport | None = None,
            env: dict[str, str] | None = None):
        state = CliState(transport=transport or plane.transport(), sleep=clock.sleep, clock=clock)
        return runner.invoke(app, list(args), obj=state, input=input,
                             env={"COLUMNS": "200", **(env or {})})

    return run
