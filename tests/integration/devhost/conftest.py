"""Fixtures: a devhost serving the sample app over real HTTP (uvicorn in a thread)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from devhost.host import create_app
from shared.keyfiles import host_key
from shared.settings import Settings
from tests.integration.devhost.sample_app import app as sample_app

TERMINAL = {"Completed", "Failed", "Terminated"}


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Devhost:
    """A running devhost: ``url``, its host ``key``, an httpx ``client`` that sends the
    key (as the host's operator would) and polling helpers."""

    def __init__(self, url: str, client: httpx.Client, data_dir: Path, app: object, key: str) -> None:
        self.url, self.client, self.data_dir, self.app, self.key = url, client, data_dir, app, key

    def start(self, name: str, payload: object = None, instance_id: str | None = None
              ) -> httpx.Response:
        """Start ``name`` through the sample app's SDK-based starter."""
        params = {"id": instance_id} if instance_id else {}
        return self.client.post(f"/api/orchestrators/{name}", json=payload, params=params)

    def status(self, instance_id: str, history: bool = False) -> dict:
        """Status via the SDK's ``client.get_status`` (inside the served app)."""
        resp = self.client.get(f"/api/status/{instance_id}",
                               params={"history": "1"} if history else {})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait(self, instance_id: str, timeout: float = 15.0,
             until: set[str] = TERMINAL) -> dict:
        """Poll until runtimeStatus is in ``until``."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.status(instance_id)
            if body.get("runtimeStatus") in until or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


def serve(app: object, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    """Run ``app`` under uvicorn in a background thread and wait until it listens."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "devhost did not start"
        time.sleep(0.02)
    return server, thread


@pytest.fixture
def devhost(tmp_path: Path) -> Iterator[Devhost]:
    """The sample app served by devhost on a free port with a fresh data dir."""
    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", api_port=port, host_max_body_bytes=4096)
    site = create_app(sample_app, settings)
    server, thread = serve(site, port)
    url = f"http://127.0.0.1:{port}"
    key = host_key(settings)
    with httpx.Client(base_url=url, timeout=30, headers={"x-functions-key": key}) as client:
        yield Devhost(url, client, tmp_path, site, key)
    server.should_exit = True
    thread.join(timeout=10)
