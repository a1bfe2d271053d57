"""Helpers for gateway integration tests: a threaded uvicorn server, server docs, and
raw-HTTP helpers for tests that need to see status codes and headers."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from shared.models import PackageSource, RemoteSource, Server, ServerSpec
from shared.settings import Settings
from shared.store import SQLiteDocumentStore

REPO_ROOT = Path(__file__).resolve().parents[3]


class ThreadedServer:
    """Runs an ASGI app with uvicorn on a pre-bound free port in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        # asyncio's loop: uvloop refuses to spawn children from two loops of one
        # process at once ("Racing with another loop"), and tests run two replicas
        # in threads; the gateway process itself runs one loop (uvloop; e2e tests).
        config = uvicorn.Config(app, log_level="warning", lifespan="on", loop="asyncio",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self.thread.is_alive(), "uvicorn thread died"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@dataclass
class GatewayUnderTest:
    """A running gateway: its base URL, store, settings and app."""

    url: str
    store: SQLiteDocumentStore
    settings: Settings
    app: Any

    def mcp_url(self, name: str) -> str:
        return f"{self.url}/servers/{name}/mcp"

    def put(self, spec: ServerSpec, status: str = "Running") -> None:
        """Insert or overwrite the server doc, as the control plane would."""
        put_server(self.store, spec, status)


def put_server(store: SQLiteDocumentStore, spec: ServerSpec, status: str = "Running") -> None:
    doc = Server(name=spec.name, spec=spec, status=status).model_dump(mode="json")
    store.upsert("servers", doc | {"id": spec.name})


def echo_spec(name: str = "echo") -> ServerSpec:
    """The repo's echo server, run from the gateway's per-server working directory."""
    return ServerSpec(name=name, kind="package", package=PackageSource(
        command=sys.executable, args=["-m", "catalog.echo.server"],
        env={"PYTHONPATH": str(REPO_ROOT)}))


def script_spec(name: str, script: Path) -> ServerSpec:
    """A package server running a Python script of the test."""
    return ServerSpec(name=name, kind="package",
                      package=PackageSource(command=sys.executable, args=[str(script)]))


def remote_spec(name: str, url: str) -> ServerSpec:
    return ServerSpec(name=name, kind="remote", remote=RemoteSource(url=url))



JSON_ONLY = {"accept": "application/json"}
BOTH = {"accept": "application/json, text/event-stream"}
INIT: dict[str, Any] = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "test", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def tools_list(request_id: int = 2) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}


async def open_session(http: httpx.AsyncClient, url: str) -> str:
    """initialize + initialized over raw HTTP; returns the Mcp-Session-Id."""
    reply = await http.post(url, json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 200, reply.text
    assert "result" in reply.json()
    session_id = reply.headers["mcp-session-id"]
    sent = await http.post(url, json=INITIALIZED,
                           headers={**JSON_ONLY, "mcp-session-id": session_id,
                                    "mcp-protocol-version": "2025-11-25"})
    assert sent.status_code == 202
    return session_id


def session_headers(session_id: str) -> dict[str, str]:
    return {**JSON_ONLY, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    """Poll until `pid` no longer exists; False on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while alive(pid):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def status(http: httpx.AsyncClient, base: str, name: str) -> dict[str, Any]:
    reply = await http.get(f"{base}/servers/{name}/status")
    assert reply.status_code == 200
    return reply.json()
