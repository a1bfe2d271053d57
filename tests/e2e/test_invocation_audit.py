"""Invocation audit end to end (issue 10 item 6, FR-022, 004 G5 "who called ToolX last
week"): real MCP calls through the gateway, then `GET /api/audit/invocations` on the
control plane, with its authorization: Operators and Admins read every server, a
Developer only the servers of their team, a Reader none."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from shared.auth.principal import Role
from tests.e2e.helpers import authed, mcp_client, wait_status

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # clearance opt-ins (tests/e2e/conftest.py)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def invocations(platform, headers: dict[str, str] | None = None, **params) -> httpx.Response:
    return httpx.get(f"{platform.api}/api/audit/invocations", params=params,
                     headers=platform.headers if headers is None else headers, timeout=10)


def wait_recorded(platform, count: int, **params) -> list[dict]:
    """Poll until `count` records match (the gateway writes them in batches)."""
    deadline = time.monotonic() + 15
    while True:
        items = invocations(platform, limit=500, **params).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.2)


async def test_who_called_a_tool_is_answered_by_filters_pages_and_roles(platform):
    spec = {"name": "echo", "kind": "package", "owner_team": "team-a",
            "package": {"command": sys.executable, "args": ["-m", "catalog.echo.server"]}}
    assert authed.post(f"{platform.api}/api/servers", json=spec, timeout=30).status_code == 202
    wait_status(platform.api, "echo", {"Running"}, timeout=60)
    dev_a = bearer(platform.token("dev-a", Role.DEVELOPER, groups=("team-a",)))
    dev_b = bearer(platform.token("dev-b", Role.DEVELOPER, groups=("team-b",)))
    reader = bearer(platform.token("rita", Role.READER))
    for headers, calls in ((dev_a, 3), (reader, 2)):
        async with mcp_client(f"{platform.gateway}/servers/echo/mcp", headers) as client:
            for n in range(calls):
                await client.call_tool("echo", {"message": f"call {n}"})
    started = datetime.now(timezone.utc) - timedelta(minutes=5)

    by_dev = wait_recorded(platform, 3, tool="echo", actor="dev-a")
    assert len(by_dev) == 3 and {(d["server"], d["tool"], d["actor"], d["result"]) for d in by_dev} == {
        ("echo", "echo", "dev-a", "200")}
    assert [d["id"] for d in by_dev] == sorted((d["id"] for d in by_dev), reverse=True)  # newest first
    assert len(wait_recorded(platform, 5, tool="echo", since=started.isoformat())) == 5
    assert invocations(platform, tool="echo", until=started.isoformat()).json()["items"] == []

    first = invocations(platform, tool="echo", limit=2).json()
    rest = invocations(platform, tool="echo", limit=500, cursor=first["next"]).json()
    assert len(first["items"]) == 2 and rest["next"] is None
    assert len({d["id"] for d in first["items"] + rest["items"]}) == 5

    # a Developer reads the servers of their team only, naming one; a Reader reads none
    assert len(invocations(platform, dev_a, server="echo", tool="echo", limit=500).json()["items"]) == 5
    assert invocations(platform, dev_a).status_code == 403
    assert invocations(platform, dev_b, server="echo").status_code == 403
    assert invocations(platform, reader, server="echo").status_code == 403
    assert invocations(platform, {}).status_code == 401
    denied = {(e["actor"], e["action"]) for e in authed.get(f"{platform.api}/api/audit", params={
        "action": "invocations.read", "limit": 500}, timeout=10).json()["items"]}
    assert {("dev-a", "invocations.read"), ("dev-b", "invocations.read")} <= denied  # refusals audited

    for bad in ({"limit": "0"}, {"cursor": "nope"}, {"since": "last week"}):
        response = invocations(platform, **bad)
        assert response.status_code == 400 and response.headers["content-type"].startswith(
            "application/problem+json"), response.text
