"""The package-process adapter (shared/package_processes.py) on its own: real
`python -m gateway` single-server processes on their loopback addresses, the real echo
server behind them, the real embedded secret store.

The happy path through the control plane and the gateway replicas is
tests/e2e/test_production_shaped.py; here are the adapter's own rules: idempotent apply,
secrets as 0600 files the server sees, a crash-looping process failing its rollout with
the reason, the address clash refusal, and delete leaving no process behind.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from shared import package_processes
from shared.models import ServerSpec
from shared.package_processes import LocalPackageProcesses, address, service_url
from shared.secrets import get_secret_store
from shared.settings import get_settings
from tests.integration.gateway.helpers import INIT, INITIALIZED, session_headers


@pytest.fixture
def adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPackageProcesses]:
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MCPAAS_PACKAGE_PROCESSES", "true")
    get_settings.cache_clear()
    local = LocalPackageProcesses(tmp_path / "package-processes", get_settings())
    try:
        yield local
    finally:
        local.stop_all()
        get_settings.cache_clear()


def echo(name: str, **package: object) -> ServerSpec:
    return ServerSpec.model_validate({"name": name, "kind": "package", "package": {
        "command": "python", "args": ["-m", "catalog.echo.server"], **package}})


def rollout(local: LocalPackageProcesses, name: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = local.rollout(name)
        if state["state"] != "progressing":
            return state
        time.sleep(0.1)
    raise TimeoutError(f"{name} still progressing")


def test_selected_only_without_a_cluster(adapter: LocalPackageProcesses, monkeypatch: pytest.MonkeyPatch) -> None:
    assert package_processes.selected(get_settings())
    monkeypatch.setenv("MCPAAS_KUBECONFIG", "/nonexistent/kubeconfig")
    get_settings.cache_clear()
    assert not package_processes.selected(get_settings())  # a cluster wins: package pods


def test_apply_is_idempotent_and_the_server_reads_its_secret_file(adapter: LocalPackageProcesses) -> None:
    ref = get_secret_store().put("greeting", "s3cret-value")
    spec = echo("secretive", secrets={"GREETING": {"ref": ref}})
    assert adapter.apply(spec) == 1
    assert rollout(adapter, "secretive")["state"] == "complete"
    pid = adapter.pid("secretive")
    assert adapter.apply(spec) == 1 and adapter.pid("secretive") == pid  # nothing rolled

    secret = adapter.root / "secretive" / "secrets" / "GREETING"
    assert secret.read_text() == "s3cret-value" and secret.stat().st_mode & 0o777 == 0o600
    assert secret.parent.stat().st_mode & 0o777 == 0o700
    # the value is nowhere in the process's settings: a file reference only
    environment = psutil.Process(pid).environ()
    assert "s3cret-value" not in "".join(environment.values())
    assert environment["MCPAAS_SECRETS_MOUNT_DIR"] == str(secret.parent)
    # the server is reachable at its stable address and speaks MCP
    with httpx.Client(timeout=30) as http:
        reply = http.post(service_url("secretive"), json=INIT, headers={"accept": "application/json"})
        assert reply.status_code == 200, reply.text
        assert http.post(service_url("secretive"), json=INITIALIZED,
                         headers=session_headers(reply.headers["mcp-session-id"])).status_code == 202
    # no pod isolates it here: the host's sandbox stays on, no opt-out
    assert environment["MCPAAS_GATEWAY_SANDBOX"] == get_settings().gateway_sandbox
    assert environment["MCPAAS_GATEWAY_UNSANDBOXED_TEAMS"] == ""

    # a changed spec is a new generation: a new process at the same address
    assert adapter.apply(echo("secretive", secrets={"GREETING": {"ref": ref}}, env={"X": "1"})) == 2
    assert adapter.pid("secretive") != pid and not psutil.pid_exists(pid)


def test_a_process_that_never_gets_ready_fails_its_rollout_with_the_reason(adapter: LocalPackageProcesses) -> None:
    # the install step runs before the port opens; failing, the process exits (as a pod would)
    spec = echo("broken", install=["pip", "install", "--no-index", "not-a-real-mcp-package"])
    adapter.apply(spec)
    state = rollout(adapter, "broken", seconds=120)
    assert state["state"] == "failed" and state["ready"] == 0
    assert "exited 3 times before it was ready" in state["reason"], state
    assert adapter.delete("broken") == 1 and adapter.pid("broken") is None


def test_two_servers_on_one_address_are_refused(adapter: LocalPackageProcesses) -> None:
    seen: dict[str, str] = {}
    for number in itertools.count():  # 24 bits of address: a clash turns up within a few thousand names
        name = f"s{number}"
        if address(name) in seen:
            first, second = seen[address(name)], name
            break
        seen[address(name)] = name
    adapter.apply(echo(first))
    with pytest.raises(RuntimeError, match="would share the loopback address"):
        adapter.apply(echo(second))
    assert adapter.pid(second) is None


def test_delete_ends_the_process_tree_and_its_directory(adapter: LocalPackageProcesses) -> None:
    adapter.apply(echo("short-lived"))
    assert rollout(adapter, "short-lived")["state"] == "complete"
    with httpx.Client(timeout=30) as http:  # a session, so the bridge has a child
        http.post(service_url("short-lived"), json=INIT, headers={"accept": "application/json"})
    bridge = psutil.Process(adapter.pid("short-lived"))
    tree = [bridge, *bridge.children(recursive=True)]
    assert len(tree) > 1
    assert adapter.delete("short-lived") == 1
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not (adapter.root / "short-lived").exists()
    assert adapter.delete("short-lived") == 0  # idempotent
    assert adapter.logs("short-lived") == [] and adapter.observe("short-lived") is None
