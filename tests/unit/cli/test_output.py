"""`--output table|json|yaml` (issue 13 item 5): the machine formats parse and carry the
facts the table shows; errors say what to do next."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from tests.unit.cli.conftest import server_doc

ECHO = {"name": "echo", "kind": "package", "package": {"command": "python", "args": ["-m", "catalog.echo.server"]}}


@pytest.fixture
def running(plane):
    plane.servers["echo"] = server_doc("echo", ECHO, status="Running", revision=1, latest_revision=1,
                                       endpoint="http://gw/servers/echo/mcp")
    plane.servers["rem"] = server_doc("rem", {"name": "rem", "kind": "remote", "remote": {"url": "https://r/mcp"}},
                                      status="Error", status_reason="upstream refused", revision=0)
    plane.revisions["echo"] = [{"number": 1, "created_at": "2026-12-01T00:00:00Z", "actor": "ann",
                                "operation_id": "op-1", "diff": {"name": {"from": None, "to": "echo"}}}]
    return plane


@pytest.mark.parametrize(("args", "facts"), [
    (["status"], lambda body: [(s["name"], s["status"], s["endpoint"] or "-") for s in body["items"]]),
    (["status", "rem"], lambda body: [(body["name"], body["status"], body["status_reason"])]),
    (["history", "echo"], lambda body: [(str(r["number"]), r["actor"], r["operation_id"]) for r in body["items"]]),
])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_output_parses_and_carries_the_tables_facts(running, invoke, args, facts, fmt):
    machine = invoke(*args, "--output", fmt)
    assert machine.exit_code == 0, machine.output
    body = json.loads(machine.stdout) if fmt == "json" else yaml.safe_load(machine.stdout)
    table = invoke(*args).stdout
    for row in facts(body):
        for value in row:
            assert value in table, (value, table)


def test_deploy_and_delete_print_their_outcome_as_json(running, invoke, tmp_path):
    spec = tmp_path / "rem.yaml"
    spec.write_text(yaml.safe_dump({"name": "new", "kind": "remote", "remote": {"url": "https://n/mcp"}}))
    accepted = json.loads(invoke("deploy", "-f", str(spec), "--no-wait", "-o", "json").stdout)
    assert accepted["name"] == "new" and accepted["status"] == "Accepted"
    gone = json.loads(invoke("delete", "rem", "--no-wait", "-o", "json").stdout)
    assert gone == {"name": "rem", "status": "Accepted", "operation_id": "op-del"}


def test_login_json_holds_the_token_it_saved(invoke, tmp_path):
    result = invoke("login", "--user", "ann", "--role", "Developer", "--data-dir", str(tmp_path), "-o", "json")
    body = json.loads(result.stdout)
    assert body["user"] == "ann" and body["roles"] == ["Developer"]
    assert (tmp_path / "cli-token").read_text() == body["token"] and body["saved"] == str(tmp_path / "cli-token")


def test_errors_say_what_to_do(plane, invoke):
    refused = httpx.MockTransport(lambda request: httpx.Response(
        401, json={"title": "Unauthorized", "status": 401, "detail": "no token"},
        headers={"Content-Type": "application/problem+json"}))
    assert "mcpaas login" in " ".join(invoke("status", transport=refused).stderr.split())
    plane.down = True
    down = " ".join(invoke("status").stderr.split())
    assert "mcpaas up" in down and "MCPAAS_API_URL" in down


def test_an_unknown_output_format_is_a_usage_error(invoke):
    assert invoke("status", "-o", "xml").exit_code == 2
