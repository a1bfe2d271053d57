"""Everyday commands against the running platform (issue 13 item 5): `logs`, `audit`, `keys`,
`shares`, `events`; each `-o json` parses and carries the facts its table shows."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from cli.everyday import _after
from cli.main import app


def run(platform, *args: str, code: int = 0):
    token = platform.__dict__.setdefault("cli_token", platform.token())
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["--api-url", platform.api, "--token", token, *args])
    assert result.exit_code == code, result.output
    return result


def both(platform, *args: str) -> tuple[dict, str]:
    return json.loads(run(platform, *args, "-o", "json").stdout), run(platform, *args).stdout


def test_everyday_commands_print_the_same_facts_as_json_and_table(platform):
    run(platform, "catalog", "install", "echo")

    audit, table = both(platform, "audit", "--server", "echo", "--limit", "5")
    assert audit["items"] and {"server.create"} <= {entry["action"] for entry in audit["items"]}
    for entry in audit["items"]:
        assert entry["action"] in table and entry["result"] in table

    shares, table = both(platform, "shares", "echo")
    assert shares == {"items": []} and "echo is not shared." in table

    created = json.loads(run(platform, "keys", "create", "ci", "--role", "Reader", "--server", "echo",
                             "-o", "json").stdout)
    assert created["key"].startswith("mcpk_") and created["record"]["servers"] == ["echo"]
    keys, table = both(platform, "keys", "list")
    mine = next(key for key in keys["items"] if key["id"] == created["record"]["id"])
    assert mine["id"] in table and "Reader" in table and created["key"] not in table
    revoked = json.loads(run(platform, "keys", "revoke", mine["id"], "-o", "json").stdout)
    assert revoked["revoked"] is True
    refused = httpx.get(f"{platform.api}/api/servers", headers={"Authorization": f"Bearer {created['key']}"})
    assert refused.status_code == 401

    logs = json.loads(run(platform, "logs", "echo", "--tail", "5", "-o", "json").stdout)
    assert logs["name"] == "echo" and isinstance(logs["lines"], list) and len(logs["lines"]) <= 5

    not_container = run(platform, "events", "echo", code=1)
    assert "package server" in not_container.output and "pods only" in not_container.output


def test_follow_prints_only_lines_after_the_last_seen():
    assert _after([], ["a", "b"]) == ["a", "b"]
    assert _after(["a", "b"], ["a", "b", "c", "d"]) == ["c", "d"]
    assert _after(["x"], ["b", "c"]) == ["b", "c"]  # the last seen line rotated out: show all
    assert _after(["a", "b"], ["a", "b"]) == []
