"""devhost's runtime routes need the host key, as the Functions host's do (issue 10, NFR-SEC-004).

Every route under /runtime and /admin answers 401 without a valid key; with the key in
the `x-functions-key` header, the `code` query parameter or (how the Durable SDK's own
client carries it) Basic credentials, it works; the SDK client inside the app keeps
working; HTTP-triggered functions under /api are not affected.
"""

from __future__ import annotations

import base64
import json
import stat

import httpx
import pytest

from devhost.host import create_app
from shared.keyfiles import host_key
from shared.settings import Settings
from tests.integration.devhost.conftest import Devhost, free_port, serve
from tests.integration.devhost.sample_app import app as sample_app

WEBHOOK = "/runtime/webhooks/durabletask"
RUNTIME_ROUTES = [
    ("POST", "/runtime/queues/work/messages"),
    ("GET", "/runtime/queues/work/deadletter"),
    ("POST", f"{WEBHOOK}/orchestrators/hello_sequence"),
    ("POST", f"{WEBHOOK}/orchestrators/hello_sequence/chosen-id"),
    ("GET", f"{WEBHOOK}/instances/"),
    ("GET", f"{WEBHOOK}/instances/some-id"),
    ("POST", f"{WEBHOOK}/instances/some-id/raiseEvent/go"),
    ("POST", f"{WEBHOOK}/instances/some-id/terminate"),
    ("POST", "/runtime/webhooks/eventgrid?functionName=grid"),
    ("OPTIONS", "/runtime/webhooks/eventgrid"),
    ("POST", "/admin/functions/tick"),
]


def _basic(password: str, user: str = "functions") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("credential", ["none", "wrong header", "wrong code", "wrong basic", "bearer"])
def test_runtime_routes_refuse_requests_without_the_key(devhost: Devhost, credential: str) -> None:
    headers, params = {}, {}
    if credential == "wrong header":
        headers["x-functions-key"] = devhost.key[:-1] + "x"
    elif credential == "wrong code":
        params["code"] = "not-the-key"
    elif credential == "wrong basic":
        headers.update(_basic("not-the-key"))
    elif credential == "bearer":  # a user token is not the host key
        headers["Authorization"] = f"Bearer {devhost.key}"
    for method, path in RUNTIME_ROUTES:
        response = httpx.request(method, devhost.url + path, headers=headers, params=params,
                                 content=b'{"action": "start"}', timeout=10)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401


def test_a_keyless_enqueue_and_start_change_nothing(devhost: Devhost) -> None:
    httpx.post(f"{devhost.url}/runtime/queues/work/messages", content=b"{}", timeout=10)
    httpx.post(f"{devhost.url}{WEBHOOK}/orchestrators/hello_sequence/sneaky", timeout=10)
    assert devhost.client.get(f"{WEBHOOK}/instances/").json() == []
    assert devhost.app.state.queues.queues.active_count("work") == 0


@pytest.mark.parametrize("form", ["header", "code", "basic"])
def test_each_key_form_is_accepted(devhost: Devhost, form: str) -> None:
    headers = {"x-functions-key": devhost.key} if form == "header" else \
        _basic(devhost.key) if form == "basic" else {}
    params = {"code": devhost.key} if form == "code" else {}
    started = httpx.post(f"{devhost.url}{WEBHOOK}/orchestrators/hello_sequence/by-{form}",
                         headers=headers, params=params, timeout=10)
    assert started.status_code == 202, started.text
    assert devhost.wait(f"by-{form}")["runtimeStatus"] == "Completed"
    listed = httpx.get(f"{devhost.url}/runtime/queues/work/deadletter", headers=headers,
                       params=params, timeout=10)
    assert listed.status_code == 200 and listed.json() == {"items": []}


def test_sdk_client_and_check_status_urls_work_with_the_key_they_were_given(devhost: Devhost) -> None:
    anonymous = httpx.Client(base_url=devhost.url, timeout=30)  # /api needs no host key
    started = anonymous.post("/api/orchestrators/hello_sequence")  # the SDK client's start_new
    assert started.status_code == 202, started.text
    body = started.json()
    done = anonymous.get(f"/api/status/{body['id']}").json()  # the SDK client's get_status
    assert done["instanceId"] == body["id"]
    devhost.wait(body["id"])
    # the management URLs carry `code=` as Azure's do, so they work without other credentials
    direct = anonymous.get(body["statusQueryGetUri"])
    assert direct.status_code == 200 and direct.json()["runtimeStatus"] == "Completed"
    assert f"code={devhost.key}" in body["statusQueryGetUri"]
    anonymous.close()


def test_generated_key_is_private_and_stable_and_a_setting_wins(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = host_key(settings)
    mode = stat.S_IMODE(settings.host_key_path.stat().st_mode)
    assert mode == 0o600 and len(first) >= 40
    assert host_key(settings) == first  # read back, not regenerated
    chosen = Settings(data_dir=tmp_path / "data", host_key="from-key-vault")
    assert host_key(chosen) == "from-key-vault"
    assert host_key(Settings(data_dir=tmp_path / "other"), create=False) is None


def test_a_configured_key_guards_the_routes(tmp_path) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", api_port=port, host_key="configured-key")
    server, thread = serve(create_app(sample_app, settings), port)
    try:
        url = f"http://127.0.0.1:{port}{WEBHOOK}/instances/"
        assert httpx.get(url, timeout=10).status_code == 401
        assert httpx.get(url, params={"code": "configured-key"}, timeout=10).status_code == 200
        assert not settings.host_key_path.exists()  # nothing generated when the setting is used
        started = httpx.post(f"http://127.0.0.1:{port}/api/orchestrators/hello_sequence",
                             content=json.dumps(None), timeout=10)
        assert started.status_code == 202, started.text
    finally:
        server.should_exit = True
        thread.join(timeout=10)
