"""`mcpaas login` (issue 13 item 5): Entra ID device code through the real azure-identity
`DeviceCodeCredential` against a fake Entra at the HTTP boundary (`tests.fakes.entra`),
then the saved token on a control-plane request; and the local token flow's usage errors."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.state import CliState
from shared.settings import get_settings
from tests.fakes.entra import DEVICE_GRANT, FakeEntra

ENTRA_TOKEN = "eyJ0eXAiOiJKV1QifQ.entra-access-token.sig"
ENTRA = ["login", "--entra", "--tenant", "tid-1", "--client-id", "cli-app", "--scope", "api://mcpaas/.default"]


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Iterator[Path]:
    """MCPAAS_DATA_DIR for this test, where login saves and later commands read the token."""
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


class ControlPlane:
    """Records what reaches the control plane; answers an empty server list."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"items": []})


def run(args: list[str], entra: FakeEntra | None = None, plane: ControlPlane | None = None):
    state = CliState(transport=httpx.MockTransport((plane or ControlPlane()).handle), azure_transport=entra)
    return CliRunner().invoke(app, args, obj=state, env={"COLUMNS": "200"})


def test_device_code_sign_in_saves_a_token_the_next_command_sends(data_dir):
    entra, plane = FakeEntra("tid-1", ENTRA_TOKEN, user_code="HT7-XK2"), ControlPlane()
    result = run(ENTRA, entra)
    assert result.exit_code == 0, result.output
    prompt = " ".join(result.stderr.split())
    assert "https://microsoft.com/devicelogin" in prompt and "HT7-XK2" in prompt
    assert ENTRA_TOKEN not in result.output  # never printed
    saved = data_dir / "cli-token"
    assert saved.read_text() == ENTRA_TOKEN and stat.S_IMODE(saved.stat().st_mode) == 0o600
    # the credential really ran the grant: a device code for the app and scope, then polled
    # through one authorization_pending until the token came
    forms = [(path.rsplit("/", 1)[-1], form) for method, path, form in entra.requests if method == "POST"]
    assert forms[0][0] == "devicecode" and forms[0][1]["client_id"] == "cli-app"
    assert "api://mcpaas/.default" in forms[0][1]["scope"]
    assert [name for name, _ in forms[1:]] == ["token", "token"]
    assert all(form["grant_type"] == DEVICE_GRANT for _, form in forms[1:])

    assert run(["status"], plane=plane).exit_code == 0
    assert plane.requests[0].headers["Authorization"] == f"Bearer {ENTRA_TOKEN}"


def test_device_code_sign_in_as_json_tells_what_was_done_without_the_token(data_dir):
    result = run([*ENTRA, "-o", "json"], FakeEntra("tid-1", ENTRA_TOKEN, pending=0))
    body = json.loads(result.stdout)
    assert ENTRA_TOKEN not in result.stdout
    assert body["mode"] == "entra" and body["tenant"] == "tid-1" and body["client_id"] == "cli-app"
    assert body["scope"] == "api://mcpaas/.default" and body["saved"] == str(data_dir / "cli-token")
    assert body["expires_on"].endswith("+00:00")


def test_a_refused_sign_in_fails_with_entras_reason_and_saves_nothing(data_dir):
    entra = FakeEntra("tid-1", ENTRA_TOKEN)
    entra.error = "expired_token"
    result = run(ENTRA, entra)
    assert result.exit_code == 1 and "Entra ID sign-in failed" in result.stderr
    assert "expired_token" in result.stderr and not (data_dir / "cli-token").exists()


def test_entra_settings_stand_in_for_the_flags(data_dir, monkeypatch):
    monkeypatch.setenv("MCPAAS_ENTRA_TENANT_ID", "tid-1")
    monkeypatch.setenv("MCPAAS_ENTRA_CLI_CLIENT_ID", "cli-app")
    monkeypatch.setenv("MCPAAS_ENTRA_CLI_SCOPE", "api://mcpaas/.default")
    get_settings.cache_clear()
    result = run(["login", "--entra"], FakeEntra("tid-1", ENTRA_TOKEN, pending=0))
    assert result.exit_code == 0, result.output
    assert (data_dir / "cli-token").read_text() == ENTRA_TOKEN


@pytest.mark.parametrize(("args", "says"), [
    (["login", "--entra", "--tenant", "tid-1"], "--entra needs --client-id, --scope"),
    ([*ENTRA, "--no-save"], "drop --no-save"),
    (["login"], "name --user and --role"),
    (["login", "--user", "dana"], "name --user and --role"),
])
def test_incomplete_logins_are_usage_errors(data_dir, args, says):
    result = run(args, FakeEntra("tid-1", ENTRA_TOKEN))
    assert result.exit_code == 2 and says in " ".join(result.stderr.split())
    assert not (data_dir / "cli-token").exists()


def test_a_local_login_saves_in_the_configured_data_dir(data_dir):
    result = run(["login", "--user", "dana", "--role", "Developer"])
    assert result.exit_code == 0, result.output
    assert (data_dir / "cli-token").read_text() == result.stdout.strip()
