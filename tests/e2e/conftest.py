"""Fixtures that run the real platform: devhost and the gateway as separate processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.keyfiles import read_or_create_key
from shared.settings import Settings
from tests.e2e.helpers import register_auth, register_store
from tests.emulators import cosmos_emulator  # noqa: F401  (session fixture)

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60.0, log: Path | None = None) -> None:
    """Poll `url` until it answers (any status < 500); raise RuntimeError if the process
    dies, TimeoutError if it hangs, each with the tail of `log` when given."""
    tail = (lambda: ":\n" + log.read_text()[-4000:]) if log else (lambda: "")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}{tail()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s{tail()}")


@dataclass
class Platform:
    """A running control plane (devhost) and gateway sharing one data dir."""

    data_dir: Path
    api_port: int
    gateway_port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    store_env: dict[str, str] = field(default_factory=dict)  # MCPAAS_STORE and its adapter's settings
    auth_env: dict[str, str] = field(default_factory=dict)  # e.g. MCPAAS_AUTH_MODE for a protocol rig

    @property
    def issuer(self) -> LocalIssuer:
        """The platform's local issuer (its signing key in the data dir, created on first use)."""
        return LocalIssuer(self.data_dir / "auth" / "signing-key.pem")

    def token(self, user: str = "e2e-admin", *roles: Role, groups: tuple[str, ...] = ()) -> str:
        """A local access token for `user` with `roles` (default Admin)."""
        return self.issuer.mint(user, roles or (Role.ADMIN,), groups=groups)

    @property
    def host_key(self) -> str:
        """devhost's host key for its /runtime and /admin routes (created in the data dir on
        first use, as devhost would)."""
        return read_or_create_key(Settings(data_dir=self.data_dir).host_key_path)

    @property
    def headers(self) -> dict[str, str]:
        """`Authorization` headers of an Admin, for REST and MCP calls."""
        return {"Authorization": f"Bearer {self.token()}"}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "MCPAAS_DATA_DIR": str(self.data_dir), "MCPAAS_API_PORT": str(self.api_port),
               "MCPAAS_GATEWAY_PORT": str(self.gateway_port), "MCPAAS_API_URL": self.api,
               "MCPAAS_GATEWAY_URL": self.gateway, "MCPAAS_AUTH_MODE": "local", **self.store_env,
               **self.auth_env}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def start(self, role: str) -> None:
        """Start `devhost` or `gateway` and wait until it answers."""
        log = open(self.data_dir / f"{role}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", role], cwd=REPO, env=self.env(),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[role] = process
        probe = f"{self.api}/api/servers" if role == "devhost" else f"{self.gateway}/healthz"
        wait_http(probe, process)

    def kill(self, role: str) -> None:
        """SIGKILL a role's whole process group (a crash, not a shutdown)."""
        process = self.processes.pop(role)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()


@pytest.fixture
def checkout_launchers(monkeypatch) -> None:
    """Clearance opt-ins for tests whose servers run from this checkout (request it before
    `platform`, e.g. ``pytestmark = pytest.mark.usefixtures("checkout_launchers")``): this
    venv's interpreter and ``node_modules/.bin`` by absolute path, and `remote` servers on
    loopback, which the default clearance refuses (docs/clearance.md)."""
    defaults = Settings.model_fields["clearance_launchers"].default_factory()
    monkeypatch.setenv("MCPAAS_CLEARANCE_LAUNCHERS", ",".join(
        [*defaults, f"{Path(sys.executable).parent}/*", f"{REPO}/node_modules/.bin/*"]))
    monkeypatch.setenv("MCPAAS_REMOTE_ALLOWED_NETWORKS", "127.0.0.0/8")


@pytest.fixture
def shell_launchers(monkeypatch, checkout_launchers) -> None:
    """`checkout_launchers` plus `sh -c` test scripts: `sh` admitted and inline code allowed."""
    monkeypatch.setenv("MCPAAS_CLEARANCE_LAUNCHERS", os.environ["MCPAAS_CLEARANCE_LAUNCHERS"] + ",sh")
    monkeypatch.setenv("MCPAAS_CLEARANCE_REFUSED_LAUNCHERS", "")
    monkeypatch.setenv("MCPAAS_CLEARANCE_ALLOW_INLINE_CODE", "true")


# Tests that run the platform run once per document store. `cluster` (test_container.py)
# asks for `platform` lazily, after setting env, so it is named here explicitly.
_RUN_ON_EACH_STORE = {"platform", "cluster"}


def pytest_generate_tests(metafunc):
    if _RUN_ON_EACH_STORE & set(metafunc.fixturenames):
        if "store_backend" not in metafunc.fixturenames:  # `cluster` reaches it only lazily
            metafunc.fixturenames.append("store_backend")
        metafunc.parametrize("store_backend", ["sqlite", "cosmos"], indirect=True)


@pytest.fixture
def store_backend(request) -> str:
    """The document store the platform runs on: ``sqlite`` or ``cosmos``."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def platform(request, tmp_path, store_backend):
    """The platform on free ports with a fresh data dir, on `store_backend` (Cosmos through
    the emulator, with a database of its own); stopped after the test."""
    running = Platform(tmp_path / "data", free_port(), free_port())
    if store_backend == "cosmos":
        emulator = request.getfixturevalue("cosmos_emulator")
        running.store_env = emulator.env(f"e2e-{uuid.uuid4().hex[:12]}")
    running.data_dir.mkdir()
    register_store(running.data_dir, running.store_env)
    headers = running.headers  # creates the signing key before either process races to
    # the host key rides along for devhost's /runtime and /admin routes (ignored by /api)
    register_auth(running.api, {**headers, "x-functions-key": running.host_key})
    register_auth(running.gateway, headers)
    try:
        running.start("gateway")
        running.start("devhost")
        yield running
    finally:
        running.stop()
