"""Paged REST lists over real HTTP on both stores (docs/paging.md, issue 15): `limit`,
`continuationToken`, every item once in order, and 400 problem+json for bad input."""

from __future__ import annotations

import base64
import json

import httpx

from shared.audit import invocation
from shared.models import Server, ServerSpec
from tests.e2e.helpers import authed, platform_store


def seed_servers(store, count: int) -> list[str]:
    names = [f"srv-{n:03d}" for n in range(count)]
    store.upsert_many("servers", [
        {"id": name, **Server(name=name, status="Stopped", spec=ServerSpec(
            name=name, kind="remote", remote={"url": "https://mcp.example/mcp"},
            owner_team="team-a" if n % 5 == 0 else "")).model_dump(mode="json")}
        for n, name in enumerate(names)])
    return names


def every_page(url: str, params: dict | None = None, headers: dict | None = None) -> list[list[dict]]:
    pages, params = [], dict(params or {})
    while True:
        response = authed.get(url, params=params, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body["continuationToken"] is None:
            return pages
        params["continuationToken"] = body["continuationToken"]
        assert len(pages) < 100


def assert_bad(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert field in {error["field"] for error in response.json()["errors"]}


def test_servers_page_in_name_order_and_bad_paging_input_is_400(platform):
    store = platform_store(platform.data_dir)
    names = seed_servers(store, 23)
    url = f"{platform.api}/api/servers"
    pages = every_page(url, {"limit": 10})
    assert [len(page) for page in pages][:2] == [10, 10]
    assert [server["name"] for page in pages for server in page] == names
    default = authed.get(url, timeout=30).json()
    assert len(default["items"]) == 23 and default["continuationToken"] is None  # default limit 100

    token = authed.get(url, params={"limit": 3}, timeout=30).json()["continuationToken"]
    for limit in ("0", "501", "-1", "ten", "", "1e2"):
        assert_bad(authed.get(url, params={"limit": limit}, timeout=30), "limit")
    raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**raw, "s": ["srv-020"]}).encode()).decode()
    for bad in (token[:-2], token[:5] + ("A" if token[5] != "A" else "B") + token[6:], "garbage", forged,
                "x" * 5000):
        assert_bad(authed.get(url, params={"continuationToken": bad}, timeout=30), "continuationToken")
    revisions = f"{url}/{names[0]}/revisions"  # a token of one list is refused by another
    assert_bad(authed.get(revisions, params={"continuationToken": token}, timeout=30), "continuationToken")


def test_a_credential_scoped_to_servers_pages_only_through_those(platform):
    names = seed_servers(platform_store(platform.data_dir), 30)
    mine = names[3::7]
    created = authed.post(f"{platform.api}/api/keys", timeout=30,
                          json={"name": "scoped", "roles": ["Reader"], "servers": mine})
    assert created.status_code == 201, created.text
    pages = every_page(f"{platform.api}/api/servers", {"limit": 2}, headers={"X-API-Key": created.json()["key"]})
    assert [server["name"] for page in pages for server in page] == mine
    assert all(len(page) <= 2 for page in pages)


def test_revisions_audit_and_invocations_page(platform):
    store = platform_store(platform.data_dir)
    seed_servers(store, 1)
    store.upsert_many("revisions", [
        {"id": f"srv-000.{n}", "server": "srv-000", "number": n, "spec": {"name": "srv-000", "kind": "remote",
         "remote": {"url": "https://mcp.example/mcp"}}, "actor": "e2e", "operation_id": f"op{n}"}
        for n in range(1, 13)])
    pages = every_page(f"{platform.api}/api/servers/srv-000/revisions", {"limit": 5})
    assert [revision["number"] for page in pages for revision in page] == list(range(12, 0, -1))

    store.upsert_many("audit", [{"id": f"ev{n:02d}", "actor": "pager", "action": "servers.create",
                                 "entity": f"e{n % 3}", "result": "accepted",
                                 "time": f"2026-01-01T00:00:{n:02d}.5Z"} for n in range(30)])
    url = f"{platform.api}/api/audit"
    pages = every_page(url, {"actor": "pager", "limit": 7})
    assert [event["id"] for page in pages for event in page] == [f"ev{n:02d}" for n in range(29, -1, -1)]
    first = authed.get(url, params={"actor": "pager", "limit": 7}, timeout=30).json()
    assert first["next"] == first["continuationToken"]  # the earlier `next`/`cursor` still work
    legacy = authed.get(url, params={"actor": "pager", "limit": 7, "cursor": first["next"]}, timeout=30).json()
    assert [event["id"] for event in legacy["items"]] == [f"ev{n:02d}" for n in range(22, 15, -1)]
    assert_bad(authed.get(url, params={"actor": "other", "continuationToken": first["next"]}, timeout=30),
               "continuationToken")

    store.upsert_many("invocations", [invocation(server="srv-000", actor="pager", method="tools/call",
                                                 tool="echo", latency_ms=1.0, result="200") for _ in range(11)])
    url = f"{platform.api}/api/audit/invocations"
    pages = every_page(url, {"tool": "echo", "limit": 4})
    ids = [record["id"] for page in pages for record in page]
    assert len(ids) == 11 == len(set(ids)) and ids == sorted(ids, reverse=True)
    assert_bad(authed.get(url, params={"limit": "501"}, timeout=30), "limit")
    assert_bad(authed.get(url, params={"cursor": "nope"}, timeout=30), "continuationToken")
