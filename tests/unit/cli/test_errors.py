"""Errors say what to do (issue 13 item 5): nothing listening, no answer, 401, 403.

Status answers come through httpx's own transport hook (`httpx.MockTransport`); the
unreachable and silent cases use real sockets on this machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from cli.api import ControlPlane
from cli.errors import ApiError, SlowError, UnreachableError
from shared.settings import get_settings
from tests.unit.cli.conftest import PROBLEM


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _answering(status: int, detail: str, seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, headers=PROBLEM, json={"type": "about:blank", "title": "No",
                                                             "status": status, "detail": detail})
    return httpx.MockTransport(handle)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener completes TCP handshakes (the kernel's backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_nothing_listening_names_the_url_and_how_to_start_the_platform(invoke, closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(UnreachableError) as caught, ControlPlane(url) as client:
        client.list_servers()
    assert url in caught.value.message and "make run" in caught.value.message

    # the whole command, over a real connection: one line on stderr, exit 1, no traceback
    result = invoke("--api-url", url, "status", transport=httpx.HTTPTransport())
    message = _one_line(result.stderr)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"control plane not reachable at {url}" in message and "make run" in message and "mcpaas up" in message


def test_a_listener_that_never_answers_is_reported_as_slow_not_down(silent_port):
    url = f"http://127.0.0.1:{silent_port}"
    with pytest.raises(SlowError) as caught, ControlPlane(url, timeout=0.3) as client:
        client.list_servers()
    assert url in caught.value.message and "0.3 s" in caught.value.message


@pytest.fixture
def no_saved_token(tmp_path, monkeypatch) -> Iterator[None]:
    """A data dir without the token an earlier `make run` may have saved in ./.mcpaas."""
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_401_without_a_credential_says_how_to_log_in(invoke, no_saved_token):
    seen: list[httpx.Request] = []
    result = invoke("status", transport=_answering(401, "missing bearer token", seen))
    message = _one_line(result.stderr)
    assert result.exit_code == 1 and "Authorization" not in seen[0].headers
    assert "No credential was sent" in message
    assert "mcpaas login --user NAME --role Developer" in message and "mcpaas login --entra" in message


def test_401_with_a_refused_credential_says_to_log_in_again(invoke):
    result = invoke("--token", "expired.jwt", "status", transport=_answering(401, "token expired"))
    message = _one_line(result.stderr)
    assert "token expired" in message and "credential was refused" in message and "mcpaas login" in message


@pytest.mark.parametrize(("detail", "advice"), [
    ("server.delete denied: no role, team ownership or share grants server.delete",
     "server.delete needs role Operator or Admin, or Developer in the server's owner team, or a share"),
    ("keys.manage denied: no role, team ownership or share grants keys.manage", "keys.manage needs role Admin;"),
    ("audit.read denied: no role, team ownership or share grants audit.read",
     "audit.read needs role Operator or Admin;"),
    ("server.read denied: credential is not scoped to server 'b'", "Your API key is limited to other servers"),
    ("tenancy mismatch", "Your role or team may not do this"),
])
def test_403_names_the_roles_the_refused_permission_needs(invoke, detail, advice):
    result = invoke("delete", "echo", transport=_answering(403, detail))
    message = _one_line(result.stderr)
    assert result.exit_code == 1 and detail in message and advice in message


@pytest.mark.parametrize(("status", "advice"), [
    (409, "`mcpaas status`"), (500, ".mcpaas/logs/controlplane.log"), (400, None)])
def test_conflicts_and_server_failures_say_where_to_look(invoke, status, advice):
    result = invoke("status", transport=_answering(status, "etag mismatch"))
    message = _one_line(result.stderr)
    assert result.exit_code == 1 and "etag mismatch" in message
    assert (advice in message) if advice else message.endswith("No: etag mismatch")


def test_an_answer_that_is_not_problem_json_keeps_an_excerpt():
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(ApiError) as caught, ControlPlane("http://cp", transport=transport) as client:
        client.list_servers()
    assert caught.value.status == 502 and "bad gateway" in caught.value.message
