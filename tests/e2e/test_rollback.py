"""Rollback end to end over devhost (FR-004): revision n's spec comes back as a new revision."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from tests.e2e.helpers import authed, stored, wait_status

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # clearance opt-ins (tests/e2e/conftest.py)

ECHO = [sys.executable, "-m", "catalog.echo.server"]


def echo_spec(description: str) -> dict:
    return {"name": "echo", "kind": "package", "description": description,
            "package": {"command": ECHO[0], "args": ECHO[1:]}}


def revisions(api: str) -> dict[int, dict]:
    items = authed.get(f"{api}/api/servers/echo/revisions", timeout=10).json()["items"]
    return {item["number"]: item for item in items}


def deploy_three_revisions(api: str) -> None:
    assert authed.post(f"{api}/api/servers", json=echo_spec("one"), timeout=30).status_code == 202
    wait_status(api, "echo", {"Running"}, revision=1)
    for number, description in ((2, "two"), (3, "three")):
        response = authed.put(f"{api}/api/servers/echo", json=echo_spec(description), timeout=30)
        assert response.status_code == 202, response.text
        wait_status(api, "echo", {"Running"}, revision=number)


def test_rollback_to_revision_one_after_two_and_three_yields_revision_four(platform):
    deploy_three_revisions(platform.api)
    response = authed.post(f"{platform.api}/api/servers/echo/rollback", json={"revision": 1}, timeout=30)
    assert response.status_code == 202, response.text
    assert response.json()["server"]["latest_revision"] == 4

    server = wait_status(platform.api, "echo", {"Running", "Error"}, revision=4)
    assert server["status"] == "Running" and server["spec"]["description"] == "one"
    history = revisions(platform.api)
    assert sorted(history) == [1, 2, 3, 4]
    assert history[4]["spec"] == history[1]["spec"]
    assert history[4]["manifest_hash"] == history[1]["manifest_hash"] != history[3]["manifest_hash"]
    assert history[4]["diff"] == {"description": {"from": "three", "to": "one"}}

    operation = authed.get(response.headers["Location"], timeout=10).json()
    assert operation["runtimeStatus"] == "Completed"
    assert operation["output"] == {"name": "echo", "revision": 4, "status": "Running", "reason": "",
                                   "rolled_back_to": 1}
    audit = {(e["action"], e["result"]) for e in stored(platform.data_dir, "audit") if e["entity"] == "echo"}
    assert {("server.rollback", "accepted"), ("server.rollback", "succeeded")} <= audit


def test_rollback_rejects_bad_body_unknown_revision_and_operation_in_flight(platform):
    url = f"{platform.api}/api/servers/echo/rollback"
    assert authed.post(url, json={"revision": 1}, timeout=10).status_code == 404  # no such server
    assert authed.post(f"{platform.api}/api/servers", json=echo_spec("one"), timeout=30).status_code == 202
    wait_status(platform.api, "echo", {"Running"}, revision=1)

    bad = authed.post(url, json={"revision": 0, "extra": True}, timeout=10)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in bad.json()["errors"]} == {"revision", "extra"}
    assert authed.post(url, content=b"not json", timeout=10).status_code == 400
    missing = authed.post(url, json={"revision": 7}, timeout=10)
    assert missing.status_code == 404 and "no revision 7" in missing.json()["detail"]

    assert authed.put(f"{platform.api}/api/servers/echo", json=echo_spec("two"), timeout=30).status_code == 202
    busy = authed.post(url, json={"revision": 1}, timeout=10)  # revision 2's deploy still owns the server
    assert busy.status_code == 409, busy.text
    wait_status(platform.api, "echo", {"Running"}, revision=2)
    assert sorted(revisions(platform.api)) == [1, 2]


def test_cli_rollback_waits_for_the_new_revision(platform):
    assert authed.post(f"{platform.api}/api/servers", json=echo_spec("one"), timeout=30).status_code == 202
    wait_status(platform.api, "echo", {"Running"}, revision=1)
    assert authed.put(f"{platform.api}/api/servers/echo", json=echo_spec("two"), timeout=30).status_code == 202
    wait_status(platform.api, "echo", {"Running"}, revision=2)

    result = CliRunner().invoke(cli_app, ["--api-url", platform.api, "--token", platform.token(),
                                           "rollback", "echo", "--to", "1"])
    assert result.exit_code == 0, result.output
    assert "rollback of echo to revision 1 as revision 3" in result.output
    assert "echo is Running" in result.output and "(revision 3)" in result.output
    assert revisions(platform.api)[3]["spec"]["description"] == "one"
