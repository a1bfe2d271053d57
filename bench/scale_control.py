"""Benchmark: the control plane at scale (issue 15; docs/paging.md). Prints tables of medians.

1. `servers`: `GET /api/servers` (first page, default limit), every page (limit 500) and
   `GET /api/servers/{name}` over real HTTP at 10, 100 and 1,000 registered servers;
   ratio of the list to the single read in the same run.
2. `reconcile`: the reconcile timer's store walk and model validation at 10, 100 and
   1,000 servers, paged by id (what the timer does) against one sorted query by name
   (what it did), in the same run.
3. `audit`: `GET /api/audit` and `GET /api/audit/invocations` at 10k, 100k and 1M
   records on SQLite: first page, page 20 (reached by following tokens), a filtered
   first page; ratio of page 20 to page 1.
4. `cosmos`: the same at 10k records on the Cosmos emulator (`@vercel/cosmosdb-server`),
   with the ratio to SQLite at 10k.
5. `burst`: N concurrent `POST /api/servers` (10, 50, 200 `remote` servers, probed by
   the gateway against one local server-everything) until every one is Running, with
   the CPU the control plane and the gateway spent meanwhile (what bounds it).

Records are loaded straight through the store port; reads are timed with an httpx
client in a loop (keep-alive, one request at a time). `--source DIR` runs devhost from
another checkout (e.g. `git archive HEAD | tar -x -C DIR`) for before/after figures.
Usage: `python bench/scale_control.py [--sections servers,reconcile,audit,cosmos,burst]
[--max-records 1000000] [--samples 30]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.auth.principal import Role  # noqa: E402
from shared.auth.tokens import LocalIssuer  # noqa: E402
from shared.models import Server, ServerSpec  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import open_store  # noqa: E402
from shared.store.paging import every_document  # noqa: E402
from tests.emulators import _COSMOS_SERVER_JS, COSMOS_EMULATOR_KEY, free_port, stop_group  # noqa: E402

EVERYTHING = REPO / "node_modules" / ".bin" / "mcp-server-everything"
SERVER_COUNTS = (10, 100, 1000)
RECORD_COUNTS = (10_000, 100_000, 1_000_000)
BURSTS = (10, 50, 200)
LATER_PAGE = 20
TARGETS = {"GET /api/servers at 1,000 servers": 20.0, "audit page at 1M records": 50.0}


def table(title: str, headers: list[str], rows: list[list]) -> None:
    """Print one aligned table."""
    cells = [headers] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n## {title}")
    for n, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited {process.returncode}")
        try:
            httpx.get(url, timeout=2, verify=False)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def spawn(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(args, cwd=cwd, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


class Platform:
    """devhost (and optionally the gateway) on a data dir, run from `source`."""

    def __init__(self, data_dir: Path, source: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.source = data_dir, source
        self.api_port, self.gateway_port = free_port(), free_port()
        self.env = {"MCPAAS_DATA_DIR": str(data_dir), "MCPAAS_API_PORT": str(self.api_port),
                    "MCPAAS_GATEWAY_PORT": str(self.gateway_port), "MCPAAS_AUTH_MODE": "local",
                    "MCPAAS_API_URL": self.api, "MCPAAS_GATEWAY_URL": f"http://127.0.0.1:{self.gateway_port}",
                    **(env or {})}
        token = LocalIssuer(data_dir / "auth" / "signing-key.pem").mint("bench-admin", (Role.ADMIN,))
        self.headers = {"Authorization": f"Bearer {token}"}
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, role: str) -> psutil.Process:
        process = spawn([sys.executable, "-m", role], self.env, self.source, self.data_dir / f"{role}.log")
        self.processes[role] = process
        probe = f"{self.api}/api/openapi.json" if role == "devhost" else f"http://127.0.0.1:{self.gateway_port}/healthz"
        wait_http(probe, process)
        return psutil.Process(process.pid)

    def stop(self) -> None:
        for process in self.processes.values():
            stop_group(process, 20)


@contextmanager
def platform(source: Path, *roles: str, env: dict[str, str] | None = None) -> Iterator[Platform]:
    with tempfile.TemporaryDirectory(prefix="mcpaas-scale-") as tmp:
        running = Platform(Path(tmp), source, env)
        try:
            for role in roles:
                running.start(role)
            yield running
        finally:
            running.stop()


def timed(call: Callable[[], object], samples: int) -> float:
    """Median milliseconds of `call` over `samples` runs, after two warm-up runs."""
    for _ in range(2):
        call()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def get_ok(client: httpx.Client, path: str, params: dict | None = None) -> dict:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def token_param(body: dict) -> tuple[str, str | None]:
    """The paging parameter and value of the next page (`next`/`cursor` before issue 15)."""
    if "continuationToken" in body:
        return "continuationToken", body["continuationToken"]
    return "cursor", body.get("next")


def later_page(client: httpx.Client, path: str, params: dict, page: int) -> dict:
    """The query parameters of page `page` of a list, reached by following its tokens."""
    params = dict(params)
    for _ in range(page - 1):
        name, value = token_param(get_ok(client, path, params))
        if value is None:
            break
        params[name] = value
    return params


# ---- 1. servers --------------------------------------------------------------------------
def server_doc(name: str) -> dict:
    spec = ServerSpec(name=name, kind="remote", remote={"url": "https://mcp.example/mcp"}, owner_team="team-a")
    return {"id": name, **Server(name=name, spec=spec, status="Stopped").model_dump(mode="json")}


def add_servers(store, have: int, want: int) -> None:
    store.upsert_many("servers", [server_doc(f"srv-{n:05d}") for n in range(have, want)])


def bench_servers(source: Path, samples: int) -> None:
    rows = []
    with platform(source, "devhost") as running, httpx.Client(base_url=running.api, headers=running.headers,
                                                               timeout=120) as client:
        store = open_store(Settings(data_dir=running.data_dir))
        have = 0
        for count in SERVER_COUNTS:
            add_servers(store, have, count)
            have = count

            def walk() -> None:
                params: dict = {"limit": 500}
                while True:
                    name, value = token_param(get_ok(client, "/api/servers", params))
                    if value is None:
                        return
                    params[name] = value

            first = timed(partial(get_ok, client, "/api/servers"), samples)
            every = timed(walk, max(5, samples // 3))
            one = timed(partial(get_ok, client, f"/api/servers/srv-{count // 2:05d}"), samples)
            rows.append([count, first, every, one, first / one])
    table("GET /api/servers and /api/servers/{name} (ms, median)",
          ["servers", "list 1st page", "list all pages", "get one", "list/get"], rows)
    print(f"target: GET /api/servers at 1,000 servers < {TARGETS['GET /api/servers at 1,000 servers']} ms")


# ---- 2. reconcile -------------------------------------------------------------------------
def reconcile_walk(reconcile: Callable, read: Callable[[], Iterable[dict]]) -> None:
    """What the timer does with the servers `read` returns (no cluster: none is a container)."""
    reconcile([Server.model_validate(doc) for doc in read()])


def bench_reconcile(samples: int) -> None:
    from triggers.diagnostics import reconcile

    rows = []
    with tempfile.TemporaryDirectory(prefix="mcpaas-scale-") as tmp:
        store = open_store(Settings(data_dir=Path(tmp)))
        have = 0
        for count in SERVER_COUNTS:
            add_servers(store, have, count)
            have = count
            paged = timed(partial(reconcile_walk, reconcile, lambda: every_document(store, "servers")), samples)
            sorted_all = timed(partial(reconcile_walk, reconcile, lambda: store.query("servers", order_by="name")),
                               samples)
            rows.append([count, paged, sorted_all, paged / sorted_all, paged / count * 1000])
    table("reconcile timer: store walk + validation, no cluster calls (ms, median)",
          ["servers", "paged by id", "one sorted query", "paged/sorted", "us per server"], rows)


# ---- 3./4. audit and invocations ----------------------------------------------------------
def audit_docs(start: int, stop_at: int) -> list[dict]:
    base = 1_767_225_600  # 2026-01-01T00:00:00Z; one event per ms, every 1000th on a whole second
    docs = []
    for n in range(start, stop_at):
        seconds, millis = divmod(n, 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + seconds))
        docs.append({"id": f"ev{n:09d}", "actor": f"user{n % 100}", "action": f"action{n % 5}",
                     "entity": f"srv{n % 1000}", "result": "succeeded", "detail": "bench",
                     "time": f"{stamp}.{millis:03d}000Z" if millis else f"{stamp}Z", "trace_id": ""})
    return docs


def invocation_docs(start: int, stop_at: int) -> list[dict]:
    base_ns = 1_767_225_600 * 10**9
    return [{"id": f"{base_ns + n * 1000:016x}{random.getrandbits(48):012x}", "server": f"srv{n % 1000}",
             "actor": f"user{n % 100}", "method": "tools/call", "tool": f"tool{n % 20}", "latency_ms": 1.5,
             "result": "200", "trace_id": "", "time": "2026-01-01T00:00:00Z"} for n in range(start, stop_at)]


def load(store, have: int, want: int, batch: int) -> float:
    """Seconds to grow `audit` and `invocations` from `have` to `want` records each."""
    start = time.perf_counter()
    for low in range(have, want, batch):
        high = min(low + batch, want)
        store.upsert_many("audit", audit_docs(low, high))
        store.upsert_many("invocations", invocation_docs(low, high))
    return time.perf_counter() - start


QUERIES = [("audit", "/api/audit", {}), ("audit actor=user7", "/api/audit", {"actor": "user7"}),
           ("audit server=srv7", "/api/audit", {"server": "srv7"}),
           ("invocations", "/api/audit/invocations", {}),
           ("invocations tool=tool3", "/api/audit/invocations", {"tool": "tool3"})]


def measure_audit(client: httpx.Client, count: int, samples: int, label: str) -> list[list]:
    rows = []
    for name, path, filters in QUERIES:
        params = {**filters, "limit": 50}
        first = timed(partial(get_ok, client, path, params), samples)
        later = timed(partial(get_ok, client, path, later_page(client, path, params, LATER_PAGE)), samples)
        rows.append([label, f"{count:,}", name, first, later, later / first])
    return rows


def bench_audit(source: Path, samples: int, max_records: int) -> dict[str, float]:
    rows, firsts = [], {}
    with platform(source, "devhost") as running, httpx.Client(base_url=running.api, headers=running.headers,
                                                               timeout=600) as client:
        store = open_store(Settings(data_dir=running.data_dir))
        have = 0
        for count in (c for c in RECORD_COUNTS if c <= max_records):
            seconds = load(store, have, count, 20_000)
            print(f"loaded {count:,} audit + {count:,} invocation records on SQLite ({seconds:.1f} s)", flush=True)
            have = count
            measured = measure_audit(client, count, samples, "sqlite")
            rows += measured
            if count == 10_000:
                firsts = {row[2]: row[3] for row in measured}
    table(f"audit and invocation pages on SQLite, limit 50 (ms, median; later = page {LATER_PAGE})",
          ["store", "records", "query", "1st page", "later page", "later/1st"], rows)
    print(f"target: an audit page at 1M records < {TARGETS['audit page at 1M records']} ms")
    return firsts


@contextmanager
def cosmos_emulator() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mcpaas-cosmos-") as tmp:
        process = spawn(["node", "-e", _COSMOS_SERVER_JS, str(port)], {}, REPO, Path(tmp) / "cosmos.log")
        try:
            wait_http(f"https://127.0.0.1:{port}/", process)
            yield f"https://127.0.0.1:{port}"
        finally:
            stop_group(process, 20)


def bench_cosmos(source: Path, samples: int, sqlite_firsts: dict[str, float]) -> None:
    from shared.store.cosmos import CosmosDocumentStore

    with cosmos_emulator() as endpoint:
        env = {"MCPAAS_STORE": "cosmos", "MCPAAS_COSMOS_ENDPOINT": endpoint, "MCPAAS_COSMOS_KEY": COSMOS_EMULATOR_KEY,
               "MCPAAS_COSMOS_VERIFY_TLS": "false", "MCPAAS_COSMOS_DATABASE": "bench"}
        store = CosmosDocumentStore(endpoint, "bench", key=COSMOS_EMULATOR_KEY, verify_tls=False)
        seconds = load(store, 0, 10_000, 1000)
        print(f"loaded 10,000 audit + 10,000 invocation records on the Cosmos emulator ({seconds:.1f} s)")
        with platform(source, "devhost", env=env) as running, httpx.Client(
                base_url=running.api, headers=running.headers, timeout=600) as client:
            rows = measure_audit(client, 10_000, samples, "cosmos")
    for row in rows:
        row.append(row[3] / sqlite_firsts[row[2]] if row[2] in sqlite_firsts else "-")
    table(f"audit and invocation pages on the Cosmos emulator, limit 50 (ms, median; later = page {LATER_PAGE})",
          ["store", "records", "query", "1st page", "later page", "later/1st", "1st vs sqlite"], rows)


# ---- 5. create bursts ---------------------------------------------------------------------
async def burst(running: Platform, names: list[str], target_url: str) -> tuple[float, float, list[str]]:
    """Seconds until every create is accepted (202), until every server is Running or
    Error, and the status reasons of those in Error."""
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=running.api, headers=running.headers, timeout=300, limits=limits) as client:
        start = time.perf_counter()
        answers = await asyncio.gather(*(client.post("/api/servers", json={
            "name": name, "kind": "remote", "remote": {"url": target_url}}) for name in names))
        accepted = time.perf_counter() - start
        bad = [answer.text for answer in answers if answer.status_code != 202]
        if bad:
            raise RuntimeError(f"{len(bad)} creates refused: {bad[0]}")
        waiting, failed = set(names), []
        while waiting:  # one list page per poll: polling must not load devhost itself
            await asyncio.sleep(0.1)
            listed = (await client.get("/api/servers", params={"limit": 500})).json()["items"]
            for server in listed:
                if server["name"] in waiting and server["status"] in ("Running", "Error"):
                    waiting.discard(server["name"])
                    if server["status"] == "Error":
                        failed.append(server.get("status_reason", ""))
        return accepted, time.perf_counter() - start, failed


def cpu_seconds(process: psutil.Process) -> float:
    total = process.cpu_times()
    children = [child.cpu_times() for child in process.children(recursive=True)]
    return total.user + total.system + sum(c.user + c.system for c in children)


def bench_burst(source: Path) -> None:
    port = free_port()
    # the deploy probes run as the control plane's identity: off, its rate limit (600 a
    # minute) turns about 150 probes into 429s and those servers into Error
    env = {"MCPAAS_REMOTE_ALLOWED_NETWORKS": "127.0.0.0/8", "MCPAAS_GATEWAY_RATE_LIMIT_IDENTITY": ""}
    with tempfile.TemporaryDirectory(prefix="mcpaas-everything-") as tmp:
        target = spawn([str(EVERYTHING), "streamableHttp"], {"PORT": str(port)}, REPO, Path(tmp) / "everything.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/mcp", target)
            with platform(source, "gateway", env=env) as running:
                gateway = psutil.Process(running.processes["gateway"].pid)
                devhost = running.start("devhost")
                rows = []
                for count in BURSTS:
                    names = [f"burst{count}-{n}" for n in range(count)]
                    before = cpu_seconds(devhost), cpu_seconds(gateway)
                    accepted, done, failed = asyncio.run(burst(running, names, f"http://127.0.0.1:{port}/mcp"))
                    spent = cpu_seconds(devhost) - before[0], cpu_seconds(gateway) - before[1]
                    rows.append([count, accepted, done, count / done, len(failed), spent[0], spent[1],
                                 100 * (spent[0] + spent[1]) / done])
                    if failed:
                        print(f"burst of {count}: {len(failed)} in Error, e.g. {failed[0]!r}", flush=True)
        finally:
            stop_group(target, 20)
    table("burst of creates to all Running (remote servers probed by the gateway)",
          ["creates", "all 202 s", "all settled s", "servers/s", "in Error", "devhost cpu s", "gateway cpu s",
           "cpu % of wall"], rows)
    print("devhost runs at most 8 activities at once (devhost.durable.engine.DurableEngine max_activities)"
          " and one replay episode at a time; 2 cores = 200 % cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="servers,reconcile,audit,cosmos,burst")
    parser.add_argument("--source", type=Path, default=REPO, help="checkout devhost runs from")
    parser.add_argument("--max-records", type=int, default=RECORD_COUNTS[-1])
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if "servers" in sections:
        bench_servers(args.source, args.samples)
    if "reconcile" in sections:
        bench_reconcile(args.samples)
    firsts: dict[str, float] = {}
    if "audit" in sections:
        firsts = bench_audit(args.source, args.samples, args.max_records)
    if "cosmos" in sections:
        bench_cosmos(args.source, args.samples, firsts)
    if "burst" in sections:
        bench_burst(args.source)


if __name__ == "__main__":
    main()
