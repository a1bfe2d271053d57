"""`mcpaas status`, `delete` and `history` against the fake control plane."""

from __future__ import annotations

import json

from cli.render import diff_summary
from tests.unit.cli.conftest import server_doc

ECHO = {"name": "echo", "kind": "package", "package": {"command": "python", "args": ["-m", "echo"]}}
TIME = {"name": "time", "kind": "remote", "remote": {"url": "https://t.example/mcp"}}


def _seed(plane) -> None:
    plane.servers["echo"] = server_doc("echo", ECHO, status="Running", revision=2,
                                       latest_revision=2, endpoint="http://gw/servers/echo/mcp")
    plane.servers["time"] = server_doc("time", TIME, status="Error", revision=1, latest_revision=2,
                                       status_reason="upstream answered 502")


def test_status_lists_servers_as_table(plane, invoke):
    _seed(plane)

    result = invoke("status")

    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["NAME"][:5] == ["NAME", "KIND", "STATUS", "REVISION", "ENDPOINT"]
    assert rows["echo"][1:] == ["package", "Running", "2", "http://gw/servers/echo/mcp"]
    assert rows["time"][1:4] == ["remote", "Error", "1"]
    assert "(→2)" in rows["time"][4]  # revision 2 accepted but not applied


def test_status_of_one_server_shows_reason(plane, invoke):
    _seed(plane)

    result = invoke("status", "time")

    assert result.exit_code == 0, result.output
    assert "upstream answered 502" in result.stdout
    assert "https://t.example/mcp" in result.stdout
    assert plane.calls() == [("GET", "/api/servers/time")]


def test_status_json_is_raw(plane, invoke):
    _seed(plane)

    assert json.loads(invoke("status", "--json").stdout)["items"][0]["name"] == "echo"
    assert json.loads(invoke("status", "echo", "--json").stdout) == plane.servers["echo"]


def test_status_unknown_server_exits_1(plane, invoke):
    result = invoke("status", "ghost")

    assert result.exit_code == 1
    assert "server ghost not found" in result.stderr


def test_status_empty(plane, invoke):
    result = invoke("status")
    assert result.exit_code == 0 and "No servers" in result.stdout


def test_api_url_option_and_envvar(plane, invoke):
    invoke("--api-url", "http://cp.example:9000/", "status")
    assert str(plane.requests[-1].url) == "http://cp.example:9000/api/servers"
    invoke("status", env={"MCPAAS_API_URL": "http://env.example:7000"})
    assert str(plane.requests[-1].url) == "http://env.example:7000/api/servers"


def test_delete_waits_until_gone(plane, clock, invoke):
    _seed(plane)
    plane.script["echo"] = [{"status": "Deploying"}, {"status": "Deploying"}, {"_gone": True}]

    result = invoke("delete", "echo")

    assert result.exit_code == 0, result.output
    assert plane.calls()[0] == ("DELETE", "/api/servers/echo")
    assert "echo deleted" in result.stdout
    assert "operation op-del" in result.stderr
    assert len(clock.sleeps) == 2


def test_delete_no_wait_and_missing(plane, invoke):
    _seed(plane)
    result = invoke("delete", "echo", "--no-wait")
    assert result.exit_code == 0 and plane.calls() == [("DELETE", "/api/servers/echo")]

    result = invoke("delete", "ghost")
    assert result.exit_code == 1
    assert "Not Found: server ghost not found" in result.stderr


def test_delete_times_out(plane, invoke):
    _seed(plane)
    plane.script["echo"] = [{"status": "Deploying"}] * 1000
    result = invoke("delete", "echo", "--timeout", "2")
    assert result.exit_code == 1 and "timed out after 2s" in result.stderr


def test_history_table_newest_first_with_diff_summary(plane, invoke):
    plane.revisions["echo"] = [
        {"server": "echo", "number": 1, "spec": ECHO, "actor": "alice", "operation_id": "op-1",
         "created_at": "2025-01-01T10:00:00+00:00",
         "diff": {"name": {"from": None, "to": "echo"}, "kind": {"from": None, "to": "package"}}},
        {"server": "echo", "number": 2, "spec": ECHO, "actor": "bob", "operation_id": "op-2",
         "created_at": "2025-01-02T10:00:00+00:00",
         "diff": {"package.args": {"from": ["-m", "echo"], "to": ["-m", "echo", "-v"]}}},
    ]

    result = invoke("history", "echo")

    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    body = [line for line in lines if line.split()[0].isdigit()]
    assert [line.split()[0] for line in body] == ["2", "1"]
    assert "bob" in body[0] and '"-v"' in body[0] and "→" in body[0]
    assert "initial spec (2 fields)" in body[1]
    assert plane.calls() == [("GET", "/api/servers/echo/revisions")]


def test_diff_summary_truncates_long_diffs():
    diff = {f"f{i}": {"from": i, "to": i + 1} for i in range(5)}
    assert diff_summary(diff) == "f0: 0 → 1; f1: 1 → 2; f2: 2 → 3; (+2 more)"
    assert diff_summary({}) == "no changes"
    assert diff_summary({"description": {"from": "a", "to": None}}) == 'description: "a" → ∅'
