"""Bad input over real HTTP: clear problem+json errors and nothing half-written."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import authed, stored, wait_status

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # clearance opt-ins (tests/e2e/conftest.py)

GOOD = {"name": "echo", "kind": "remote", "remote": {"url": "http://127.0.0.1:9/mcp"}}


@pytest.mark.parametrize("body, field", [
    ({"name": "Not_A_Label", "kind": "package", "package": {"command": "x"}}, "name"),
    ({"name": "a", "kind": "lambda"}, "kind"),
    ({"name": "a", "kind": "package", "package": {"args": []}}, "package.command"),
    ({"name": "a", "kind": "package"}, "package"),
    (b'{"name": "a", "kind": ', "(body)"),
    (b"[1, 2]", "(body)"),
    (b'{"name": "a", "kind": "package", "description": "' + b"x" * (1024 * 1024) + b'"}', "(body)"),
])
def test_invalid_create_is_a_400_naming_fields_and_writes_nothing(platform, body, field):
    kwargs = {"json": body} if isinstance(body, dict) else {"content": body}
    response = authed.post(f"{platform.api}/api/servers", timeout=30,
                          headers={"Content-Type": "application/json"}, **kwargs)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert field in {error["field"] for error in problem["errors"]}
    for container in ("servers", "revisions", "audit"):
        assert stored(platform.data_dir, container) == []


def test_container_kind_is_refused_with_422(platform):
    spec = {"name": "img", "kind": "container", "container": {"image": "ghcr.io/x/y:1"}}
    response = authed.post(f"{platform.api}/api/servers", json=spec, timeout=30)
    assert response.status_code == 422
    assert "no Kubernetes target configured" in response.json()["detail"]
    assert stored(platform.data_dir, "servers") == []


def test_creating_an_existing_name_is_409_and_keeps_the_first(platform):
    assert authed.post(f"{platform.api}/api/servers", json=GOOD, timeout=30).status_code == 202
    wait_status(platform.api, "echo", {"Running", "Error"}, timeout=60)
    other = {**GOOD, "description": "second"}
    response = authed.post(f"{platform.api}/api/servers", json=other, timeout=30)
    assert response.status_code == 409 and response.json()["status"] == 409
    assert authed.get(f"{platform.api}/api/servers/echo", timeout=10).json()["spec"]["description"] == ""
    assert len(stored(platform.data_dir, "revisions")) == 1


def test_unknown_entities_are_404_problems(platform):
    for method, path in [("GET", "/api/servers/ghost"), ("DELETE", "/api/servers/ghost"),
                         ("GET", "/api/servers/ghost/revisions"), ("GET", "/api/operations/nope")]:
        response = authed.request(method, f"{platform.api}{path}", timeout=30)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["Content-Type"].startswith("application/problem+json")
    response = authed.put(f"{platform.api}/api/servers/ghost", json={**GOOD, "name": "ghost"}, timeout=30)
    assert response.status_code == 404


def test_put_with_a_different_name_is_400(platform):
    response = authed.put(f"{platform.api}/api/servers/other", json=GOOD, timeout=30)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"
