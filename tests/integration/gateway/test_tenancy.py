"""Parameter isolation and tenancy (FR-019, FR-023, NFR-SEC-005): scope values from the
caller's credential reach the session's child environment; missing or foreign values
are refused and audited; dedicated servers run one instance per value at its own URL."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from shared.auth.api_keys import create_key
from shared.auth.principal import Role
from shared.models import PackageSource, ServerSpec, Tenancy

from tests.e2e.helpers import mcp_client
from tests.integration.gateway.authn import start_local
from tests.integration.gateway.helpers import INIT, JSON_ONLY, REPO_ROOT


def _scoped_echo(name: str, model: str = "shared", session_mode: str | None = None) -> ServerSpec:
    """Echo server that first writes its PROJECT_ID to `project-<value>.txt`."""
    return ServerSpec(name=name, kind="package", tenancy=Tenancy(model=model, params=["project_id"]),
                      package=PackageSource(
                          command="sh", session_mode=session_mode,
                          args=["-c", 'echo "$PROJECT_ID" > "project-$PROJECT_ID.txt"; '
                                f'exec "{sys.executable}" -m catalog.echo.server'],
                          env={"PYTHONPATH": str(REPO_ROOT), "PROJECT_ID": "pinned-by-spec"}))


async def _refusals(gw, server: str, expected: int) -> list[dict]:
    for _ in range(60):
        docs = [doc for doc in gw.store.query("audit", partition_key=server) if doc["action"] == "gateway.scope"]
        if len(docs) >= expected:
            return docs
        await asyncio.sleep(0.05)
    return docs


async def test_shared_tenancy_starts_each_session_in_its_callers_project(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(_scoped_echo("proj"))
    workdir = gw.settings.servers_dir / "proj"
    async with mcp_client(gw.mcp_url("proj"), auth.headers("ann", scopes={"project_id": ["p1"]})) as client:
        assert (await client.call_tool("echo", {"message": "x"})).content[0].text == "x"
    key, _ = create_key(gw.store, name="svc", roles=[Role.READER], created_by="t",
                        scopes={"project_id": ["p2", "p3"]})
    async with mcp_client(gw.mcp_url("proj"), {"X-API-Key": key, "MCPaaS-Scope": "project_id=p3"}) as client:
        await client.call_tool("echo", {"message": "y"})
    # the caller's value overrides what the spec's env pinned
    assert sorted(path.name for path in workdir.glob("project-*.txt")) == ["project-p1.txt", "project-p3.txt"]
    assert (workdir / "project-p1.txt").read_text().strip() == "p1"


async def test_missing_or_foreign_scope_is_refused_and_audited(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(_scoped_echo("proj"))
    attempts = [auth.headers("nobody"),  # holds no project
                {**auth.headers("two", scopes={"project_id": ["p1", "p2"]})},  # several, none named
                {**auth.headers("ann", scopes={"project_id": ["p1"]}), "MCPaaS-Scope": "project_id=p2"},
                {**auth.headers("ann", scopes={"project_id": ["p1"]}), "MCPaaS-Scope": "project_id=../p1"}]
    async with httpx.AsyncClient(timeout=10) as http:
        for headers in attempts:
            reply = await http.post(gw.mcp_url("proj"), json=INIT, headers={**JSON_ONLY, **headers})
            assert reply.status_code == 403, reply.text
            assert reply.json()["error"]["message"].startswith("Forbidden")
    refusals = await _refusals(gw, "proj", len(attempts))
    assert len(refusals) == len(attempts)
    assert {doc["actor"] for doc in refusals} == {"nobody", "two", "ann"}
    assert all(doc["result"] == "refused" for doc in refusals)
    assert not list((gw.settings.servers_dir / "proj").glob("project-*.txt"))  # nothing started


async def test_dedicated_tenancy_runs_one_instance_per_project(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(_scoped_echo("ded", model="dedicated", session_mode="shared"))
    ann = auth.headers("ann", scopes={"project_id": ["p1", "p2"]})
    for project in ("p1", "p2"):
        async with mcp_client(f"{gw.url}/servers/ded/tenants/{project}/mcp", ann) as client:
            await client.call_tool("echo", {"message": project})
    servers: Path = gw.settings.servers_dir
    assert (servers / "ded.p1" / "project-p1.txt").exists() and (servers / "ded.p2" / "project-p2.txt").exists()
    assert _running_in(servers / "ded.p1")  # mode shared: the instance's child outlives sessions
    async with httpx.AsyncClient(timeout=10) as http:
        foreign = await http.post(f"{gw.url}/servers/ded/tenants/p9/mcp", json=INIT, headers={**JSON_ONLY, **ann})
        plain = await http.post(gw.mcp_url("ded"), json=INIT, headers={**JSON_ONLY, **ann})
        stopped = await http.delete(f"{gw.url}/admin/servers/ded/sessions", headers=auth.headers("root", Role.ADMIN))
    assert foreign.status_code == 403 and plain.status_code == 403
    assert len(await _refusals(gw, "ded", 2)) == 2
    assert stopped.json() == {"stopped": 0}  # the clients closed their sessions already
    assert not _running_in(servers / "ded.p1") and not _running_in(servers / "ded.p2")


def _running_in(workdir: Path) -> list[int]:
    """Pids of live processes whose working directory is `workdir`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(proc / "cwd").resolve() == workdir.resolve():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
