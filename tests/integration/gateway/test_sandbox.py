"""The sandbox of stdio children and install steps (issue 10 items 1-2), through the real
gateway with real bubblewrap: a probing server tries to read the platform's data dir,
the signing key, the store, another server's directory and the platform's settings, as
a child and as an install step; memory limits stop a child, not the gateway;
`network: none` cuts the network; secrets reach the child but not the log.

The data dir lies *inside* a read-only path the sandbox shows (as the default `.mcpaas`
lies inside the repo), so these tests also prove that it is masked there.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from shared.auth.principal import AuthMode
from shared.models import NetworkAccess, PackageLimits, PackageSource, SecretSource, ServerSpec
from shared.secrets import create_secret_store
from shared.settings import Settings
from shared.store import SQLiteDocumentStore

from gateway.app import create_app
from gateway.children.logs import log_path
from gateway.children.sandbox import Sandbox
from tests.integration.gateway.helpers import (INIT, JSON_ONLY, GatewayUnderTest, ThreadedServer,
                                               echo_spec, status)

pytestmark = pytest.mark.asyncio

PROBE = Path(__file__).with_name("sandbox_probe.py")
# platform settings and cloud credentials in the gateway's environment: none may leak
PLATFORM_ENV = {"MCPAAS_COSMOS_KEY": "cosmos-key-123", "MCPAAS_TASK_HUB": "hub-name-321",
                "AZURE_CLIENT_SECRET": "azure-secret-456", "IDENTITY_HEADER": "identity-789",
                "MSI_SECRET": "msi-000", "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}
SECRET_VALUE = "tok-3f9a1c77e2b94d0c"


@pytest.fixture(autouse=True)
def _bwrap_installed() -> None:
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed (apt-get install -y bubblewrap): "
                    "the sandbox cannot be tested")


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., GatewayUnderTest]]:
    """Start a gateway whose data dir (store, signing key, other servers) sits inside
    the read-only directory holding the probe script."""
    for name, value in PLATFORM_ENV.items():
        monkeypatch.setenv(name, value)
    shown = tmp_path / "shown"
    shown.mkdir()
    shutil.copy(PROBE, shown / PROBE.name)
    data = shown / "data"
    (data / "auth").mkdir(parents=True)
    (data / "auth" / "signing-key.pem").write_text("-----BEGIN PRIVATE KEY----- not for children")
    (data / "servers" / "other").mkdir(parents=True)
    (data / "servers" / "other" / "token.txt").write_text("other server's file")
    with ExitStack() as stack:
        def run(**overrides: Any) -> GatewayUnderTest:
            settings = Settings(**{"data_dir": data, "auth_mode": AuthMode.NONE,
                                   "sandbox_read_paths": [str(shown)], **overrides})
            store = SQLiteDocumentStore(settings.store_path)
            server = stack.enter_context(ThreadedServer(create_app(settings, store)))
            return GatewayUnderTest(server.url, store, settings, None)
        yield run


def probe_spec(name: str, **package: Any) -> ServerSpec:
    script = Path(package.pop("script"))
    return ServerSpec(name=name, kind="package",
                      package=PackageSource(command=sys.executable, args=[str(script)], **package))


def forbidden(gw: GatewayUnderTest) -> list[str]:
    data = gw.settings.data_dir
    return [str(data), str(gw.settings.auth_key_path), str(gw.settings.store_path),
            str(data / "servers"), str(data / "servers" / "other"),
            str(data / "servers" / "other" / "token.txt"), "/proc/1/environ"]


def assert_found_nothing(found: dict[str, str], env: dict[str, str], data: Path) -> None:
    # the data dir is an empty tmpfs holding nothing but the way to the server's own dir
    assert found.pop(str(data)) == "listed: servers"
    assert found.pop(str(data / "servers")) == "listed: probe"
    for path, what in found.items():
        assert what.startswith("error:"), f"the sandbox showed {path}: {what}"
    leaked = {k for k in env if k.startswith(("MCPAAS_", "AZURE_", "IDENTITY_", "MSI_",
                                              "APPLICATIONINSIGHTS_"))}
    assert not leaked
    assert not set(PLATFORM_ENV.values()) & set(env.values())
    assert Path(env["HOME"]) == data / "servers" / "probe"


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result
    content = result.structured_content
    # scalars come wrapped as {"result": ...}; dicts as they are
    return content["result"] if set(content) == {"result"} else content


async def test_a_child_finds_no_platform_file_or_setting(start: Callable[..., GatewayUnderTest],
                                                         tmp_path: Path) -> None:
    gw = start()
    gw.put(probe_spec("probe", script=tmp_path / "shown" / PROBE.name))
    async with Client(gw.mcp_url("probe")) as client:
        found = await call(client, "probe", paths=forbidden(gw))
        env = await call(client, "environ")
        me = await call(client, "whoami")
        own = await call(client, "probe", paths=["."])
    assert_found_nothing(found, env, gw.settings.data_dir)
    assert own["."].startswith("listed:")  # its own directory is there
    expected = Sandbox(gw.settings).uid_for("probe")
    assert me["uid"] == expected and me["uid"] != 0
    assert gw.settings.auth_key_path.exists()  # it was there to find all along


async def test_an_install_step_finds_nothing_either(start: Callable[..., GatewayUnderTest],
                                                    tmp_path: Path) -> None:
    gw = start()
    script = tmp_path / "shown" / PROBE.name
    spec = probe_spec("probe", script=script)
    assert spec.package is not None
    install = [sys.executable, str(script), "--install", "report.json", *forbidden(gw)]
    gw.put(spec.model_copy(update={"package": spec.package.model_copy(update={"install": install})}))
    async with httpx.AsyncClient(timeout=60) as http:
        reply = await http.post(gw.mcp_url("probe"), json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 200, reply.text
    report = json.loads((gw.settings.servers_dir / "probe" / "report.json").read_text())
    assert_found_nothing(report["paths"], report["environ"], gw.settings.data_dir)
    assert report["uid"] != 0


async def test_a_child_cannot_rewrite_its_log_or_leave_its_directory(
        start: Callable[..., GatewayUnderTest], tmp_path: Path) -> None:
    gw = start()
    gw.put(probe_spec("probe", script=tmp_path / "shown" / PROBE.name))
    log = log_path(gw.settings.servers_dir, "probe")
    async with Client(gw.mcp_url("probe")) as client:
        await call(client, "shout", text="first line")
        found = await call(client, "probe", paths=[str(log), str(log.parent)])
    assert all(v.startswith("error:") for v in found.values()), found
    assert "shouting: first line" in log.read_text()


async def test_memory_limit_stops_the_child_and_status_says_so(
        start: Callable[..., GatewayUnderTest], tmp_path: Path) -> None:
    gw = start()
    script = tmp_path / "shown" / PROBE.name
    gw.put(probe_spec("probe", script=script, limits=PackageLimits(memory_mb=200)))
    gw.put(echo_spec())
    async with Client(gw.mcp_url("probe")) as client:
        with pytest.raises(MCPError):  # the call dies with its child
            await client.call_tool("hog", {"megabytes": 1200})
    async with httpx.AsyncClient(timeout=30) as http:
        report = await status(http, gw.url, "probe")
    assert "memory limit of 200 MiB" in report["last_error"], report
    assert report["restarts"] >= 1
    async with Client(gw.mcp_url("echo")) as client:  # the gateway keeps serving
        assert await call(client, "echo", message="still here") == "still here"


async def test_network_none_has_no_network(start: Callable[..., GatewayUnderTest],
                                           tmp_path: Path) -> None:
    gw = start()
    script = tmp_path / "shown" / PROBE.name
    port = int(gw.url.rsplit(":", 1)[1])
    gw.put(probe_spec("offline", script=script, network=NetworkAccess.NONE))
    gw.put(probe_spec("online", script=script))
    async with Client(gw.mcp_url("offline")) as offline, Client(gw.mcp_url("online")) as online:
        assert (await call(offline, "connect", host="127.0.0.1", port=port)).startswith("error:")
        assert await call(online, "connect", host="127.0.0.1", port=port) == "connected"


async def test_secrets_reach_the_child_but_not_its_log(start: Callable[..., GatewayUnderTest],
                                                       tmp_path: Path) -> None:
    gw = start()
    ref = create_secret_store(gw.settings).put("probe-token", SECRET_VALUE)
    gw.put(probe_spec("probe", script=tmp_path / "shown" / PROBE.name,
                      secrets={"API_TOKEN": SecretSource(ref=ref)}))
    async with Client(gw.mcp_url("probe")) as client:
        env = await call(client, "environ")
        await call(client, "shout", text=f"my token is {SECRET_VALUE}")
        found = await call(client, "probe", paths=[str(gw.settings.secrets_dir)])
    assert env["API_TOKEN"] == SECRET_VALUE
    assert found[str(gw.settings.secrets_dir)].startswith("error:")
    text = log_path(gw.settings.servers_dir, "probe").read_text()
    assert "my token is [REDACTED]" in text and SECRET_VALUE not in text


async def test_an_unresolvable_secret_fails_the_start_naming_the_variable(
        start: Callable[..., GatewayUnderTest], tmp_path: Path) -> None:
    gw = start()
    missing = create_secret_store(gw.settings).put("gone", "value-that-was-deleted")
    create_secret_store(gw.settings).delete("gone")
    gw.put(probe_spec("probe", script=tmp_path / "shown" / PROBE.name,
                      secrets={"API_TOKEN": SecretSource(ref=missing)}))
    async with httpx.AsyncClient(timeout=30) as http:
        reply = await http.post(gw.mcp_url("probe"), json=INIT, headers=JSON_ONLY)
        report = await status(http, gw.url, "probe")
    assert reply.status_code == 502
    message = reply.json()["error"]["message"]
    assert "API_TOKEN" in message and "value-that-was-deleted" not in message
    assert "API_TOKEN" in report["last_error"]


async def test_without_sandbox_team_servers_need_an_opt_in(
        start: Callable[..., GatewayUnderTest], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    gw = start(gateway_sandbox="none", gateway_unsandboxed_teams=["trusted"])
    assert "SANDBOX OFF" in caplog.text
    script = tmp_path / "shown" / PROBE.name
    for name, team in (("teamless", ""), ("opted", "trusted"), ("refused", "payments")):
        gw.put(probe_spec(name, script=script).model_copy(update={"owner_team": team}))
    async with httpx.AsyncClient(timeout=30) as http:
        replies = {name: await http.post(gw.mcp_url(name), json=INIT, headers=JSON_ONLY)
                   for name in ("teamless", "opted", "refused")}
        report = await status(http, gw.url, "refused")
    assert replies["teamless"].status_code == replies["opted"].status_code == 200
    assert replies["refused"].status_code == 502
    message = replies["refused"].json()["error"]["message"]
    assert "MCPAAS_GATEWAY_UNSANDBOXED_TEAMS" in message and "payments" in message
    assert "MCPAAS_GATEWAY_UNSANDBOXED_TEAMS" in report["last_error"]


async def test_a_non_root_gateway_sandboxes_too_and_counts_processes_per_sandbox() -> None:
    """The argv a non-root gateway runs (unprivileged bwrap in a user namespace), run as
    `nobody`: own dir writable, data dir empty, RLIMIT_NPROC counted in the sandbox."""
    # not under pytest's tmp_path: its parents are mode 0700, closed to `nobody`
    with tempfile.TemporaryDirectory() as tmp:
        await asyncio.to_thread(_run_as_nobody, Path(tmp))


def _run_as_nobody(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "servers" / "s").mkdir(parents=True)
    (data / "auth").mkdir()
    (data / "auth" / "signing-key.pem").write_text("key")
    for path in (tmp_path, data, data / "servers", data / "servers" / "s"):
        os.chown(path, 65534, 65534)
    sandbox = Sandbox(Settings(data_dir=data))
    sandbox.as_root = False  # what `Sandbox` finds in a gateway started by a normal user
    sandbox.read_paths = []  # this machine's interpreter lives under /root: `nobody` cannot bind it
    script = ("touch mine && echo wrote; ls -a ..; cat ../../auth/signing-key.pem 2>&1; "
              "for i in $(seq 40); do sleep 1 & done 2>&1; wait")
    package = PackageSource(command="sh", limits=PackageLimits(processes=20))
    argv = sandbox.wrap("s", package, ["sh", "-c", script])
    assert not any(arg.startswith("--reuid") for arg in argv)
    as_nobody = {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=data / "servers" / "s",
                          env={"PATH": "/usr/bin:/bin"}, **as_nobody)
    out = done.stdout + done.stderr
    assert "wrote" in out and (data / "servers" / "s" / "mine").exists()
    assert "key" not in out.replace("signing-key", "")  # the key file is not there to read
    assert "Cannot fork" in out or "Resource temporarily unavailable" in out
