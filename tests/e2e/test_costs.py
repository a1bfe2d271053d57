"""Cost events end to end (issue 12 item 1 acceptance, FR-026): hundreds of real tool
calls by two actors on two tools of a third-party stdio server (`mcp-server-time` from
PyPI) through the gateway, then `GET /api/costs` counts exactly that many, split by
actor, tool, server and day, as JSON and as CSV; the model comes from the
`MCPaaS-Model` header or the spec; the endpoint is authorized like the invocation audit."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.auth.principal import Role
from shared.costs import estimate_tokens
from tests.e2e.helpers import authed, mcp_client, wait_status

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # clearance opt-ins (tests/e2e/conftest.py)

CALLS = {("ann", "get_current_time"): 120, ("ann", "convert_time"): 40, ("bob", "get_current_time"): 50,
         ("bob", "convert_time"): 90}
N = sum(CALLS.values())
TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")  # from PyPI, in the venv
ARGUMENTS = {"get_current_time": {"timezone": "Europe/Paris"},
             "convert_time": {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}}


def costs(platform, headers=None, **params) -> httpx.Response:
    return httpx.get(f"{platform.api}/api/costs", params=params,
                     headers=platform.headers if headers is None else headers, timeout=10)


def wait_counted(platform, count: int) -> list[dict]:
    """Poll until `count` events are aggregated (the gateway writes them in batches)."""
    deadline = time.monotonic() + 20
    while True:
        rows = costs(platform, group_by="").json()["items"]
        if (rows and rows[0]["calls"] >= count) or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


async def call_tools(platform, actor: str, model: str | None) -> None:
    headers = {"Authorization": f"Bearer {platform.token(actor, Role.DEVELOPER, groups=('team-t',))}"}
    if model:
        headers["MCPaaS-Model"] = model
    async with mcp_client(f"{platform.gateway}/servers/clock/mcp", headers) as client:
        for tool in ARGUMENTS:
            for _ in range(CALLS[(actor, tool)]):
                result = await client.call_tool(tool, ARGUMENTS[tool])
                assert not result.is_error, result


async def test_costs_count_every_call_split_by_actor_tool_server_and_day(platform):
    spec = {"name": "clock", "kind": "package", "owner_team": "team-t", "model": "gpt-4o-mini",
            "package": {"command": TIME_SERVER, "args": ["--local-timezone", "UTC"]}}
    assert authed.post(f"{platform.api}/api/servers", json=spec, timeout=30).status_code == 202
    wait_status(platform.api, "clock", {"Running"}, timeout=90)

    await asyncio.gather(call_tools(platform, "ann", "gpt-4o"), call_tools(platform, "bob", None))

    total = wait_counted(platform, N)
    assert total[0]["calls"] == N and total[0]["errors"] == 0, total
    assert total[0]["input_tokens"] > 0 and total[0]["output_tokens"] > 0
    rows = costs(platform, group_by="actor,tool,server,day,model").json()["items"]
    assert {(r["actor"], r["tool"]): r["calls"] for r in rows} == CALLS
    assert {(r["actor"], r["model"]) for r in rows} == {("ann", "gpt-4o"), ("bob", "gpt-4o-mini")}
    assert {r["server"] for r in rows} == {"clock"} and len({r["day"] for r in rows}) == 1
    # the estimator: the same arguments cost the same input tokens every call
    per_call = {r["tool"]: r["input_tokens"] / r["calls"] for r in rows}
    assert per_call == {tool: estimate_tokens(json.dumps(args, separators=(",", ":")))
                        for tool, args in ARGUMENTS.items()} == {"get_current_time": 7, "convert_time": 18}

    exported = costs(platform, headers={**platform.headers, "Accept": "text/csv"}, group_by="actor,tool")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(exported.text)))
    assert {(r["actor"], r["tool"]): int(r["calls"]) for r in parsed} == CALLS

    # `mcpaas costs` reads the same endpoint: a table, CSV, and the API's 400 as a message
    admin = ["--api-url", platform.api, "--token", platform.token("e2e-admin", Role.ADMIN)]
    shown = CliRunner(env={"COLUMNS": "200"}).invoke(app, [*admin, "costs", "--by", "actor,tool"])
    assert shown.exit_code == 0 and "get_current_time" in shown.stdout and "120" in shown.stdout, shown.output
    printed = CliRunner().invoke(app, [*admin, "costs", "--by", "actor", "--csv"])
    rows = csv.DictReader(io.StringIO(printed.stdout))
    assert {r["actor"]: int(r["calls"]) for r in rows} == {"ann": 160, "bob": 140}
    scripted = CliRunner().invoke(app, [*admin, "costs", "--by", "", "-o", "json"])
    assert json.loads(scripted.stdout)["items"][0]["calls"] == N, scripted.output
    refused = CliRunner().invoke(app, [*admin, "costs", "--by", "secret"])
    assert refused.exit_code != 0 and "group_by" in refused.output

    # authorized like the invocation audit: the owning team's Developer names the server
    dev = {"Authorization": f"Bearer {platform.token('dev', Role.DEVELOPER, groups=('team-t',))}"}
    other = {"Authorization": f"Bearer {platform.token('eve', Role.DEVELOPER, groups=('team-x',))}"}
    assert costs(platform, dev, server="clock", group_by="").json()["items"][0]["calls"] == N
    assert costs(platform, dev).status_code == 403
    assert costs(platform, other, server="clock").status_code == 403
    assert costs(platform, {}).status_code == 401
    for bad in ({"group_by": "secret"}, {"group_by": "actor,actor"}, {"since": "yesterday"},
                {"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}):
        response = costs(platform, **bad)
        assert response.status_code == 400 and response.headers["content-type"].startswith(
            "application/problem+json"), (bad, response.text)


async def test_a_malformed_model_header_is_refused_before_the_server(platform):
    spec = {"name": "clock", "kind": "package", "package": {"command": TIME_SERVER}}
    assert authed.post(f"{platform.api}/api/servers", json=spec, timeout=30).status_code == 202
    wait_status(platform.api, "clock", {"Running"}, timeout=90)
    response = httpx.post(f"{platform.gateway}/servers/clock/mcp", timeout=10, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, headers={
        **platform.headers, "MCPaaS-Model": "=cmd|calc!A0 x", "Accept": "application/json, text/event-stream"})
    assert response.status_code == 400 and "MCPaaS-Model" in response.json()["error"]["message"]
