"""Sessions at scale (issue 15, docs/scale.md).

1,000 new MCP sessions at once against one `shared` server: every one succeeds, or is
refused with 503 and `Retry-After` beyond the configured per-server cap; none is reset
or answered otherwise. The gateway runs as its own process (`python -m gateway`, so its
listen backlog, keep-alive timeout and descriptor limit are the ones under test) on the
production path: local tokens, rate limits (raised above the burst, as an operator
expecting it would) and the invocation audit; the client is httpx with a pool as big as
the burst. The server is the repo's echo server over stdio, in the default sandbox.

Also: a `shared` server's `initialize` is answered from the cached result of the one
handshake the gateway made with its child, which never sees the sessions' own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.models import SessionMode
from shared.settings import Settings
from shared.store import open_store

from gateway.__main__ import raise_open_files_limit
from tests.e2e.conftest import free_port, wait_http
from tests.integration.gateway.helpers import (INIT, INITIALIZED, JSON_ONLY, GatewayUnderTest,
                                               echo_spec, put_server, script_spec, session_headers)

pytestmark = pytest.mark.asyncio

SESSIONS = 1000
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "hi"}}}
REPO = Path(__file__).resolve().parents[3]


class GatewayProcess:
    """`python -m gateway` over a SQLite store in `data`, serving the shared echo server."""

    def __init__(self, data: Path, cap: int) -> None:
        data.mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=data)
        spec = echo_spec("echo")
        assert spec.package is not None
        spec.package.session_mode = SessionMode.SHARED
        put_server(open_store(settings), spec)
        token = LocalIssuer(settings.auth_key_path).mint("burst", [Role.READER])
        self.headers = {**JSON_ONLY, "Authorization": f"Bearer {token}"}
        self.base = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "MCPAAS_DATA_DIR": str(data), "MCPAAS_STORE": "sqlite",
               "MCPAAS_AUTH_MODE": "local", "MCPAAS_GATEWAY_PORT": self.base.rsplit(":", 1)[1],
               "MCPAAS_GATEWAY_HOST": "127.0.0.1",
               # one identity opens every session: its limits must fit the burst
               "MCPAAS_GATEWAY_RATE_LIMIT_IDENTITY": "100000/minute",
               "MCPAAS_GATEWAY_RATE_LIMIT_SERVER": "100000/minute",
               "MCPAAS_GATEWAY_MAX_SHARED_SESSIONS_PER_SERVER": str(cap)}
        self.log = data / "gateway.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"{self.base}/healthz", self.proc, log=self.log)

    @property
    def url(self) -> str:
        return f"{self.base}/servers/echo/mcp"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[[int], GatewayProcess]]:
    """Start gateway processes with a shared-session cap; all stopped at teardown."""
    raise_open_files_limit()  # this process holds the client's 1,000 sockets
    started: list[GatewayProcess] = []

    def start(cap: int) -> GatewayProcess:
        started.append(GatewayProcess(tmp_path / f"data-{len(started)}", cap))
        return started[-1]

    yield start
    for gateway in started:
        gateway.stop()


async def one_session(http: httpx.AsyncClient, gw: GatewayProcess) -> tuple[str, str | None]:
    """initialize + initialized + a first tools/call: ("ok", session id), ("refused", None)
    for a 503 with a whole-seconds Retry-After, else ("failed: <what>", None)."""
    try:
        opened = await http.post(gw.url, json=INIT, headers=gw.headers)
        if opened.status_code == 503:
            retry = opened.headers.get("retry-after", "")
            if retry.isdigit() and int(retry) > 0:
                return "refused", None
            return "failed: 503 without Retry-After", None
        if opened.status_code != 200:
            return f"failed: initialize {opened.status_code} {opened.text[:200]}", None
        sid = opened.headers["mcp-session-id"]
        headers = {**gw.headers, **session_headers(sid)}
        noted = await http.post(gw.url, json=INITIALIZED, headers=headers)
        called = await http.post(gw.url, json=CALL, headers=headers)
    except httpx.HTTPError as exc:  # a reset, a refused connection, a timeout
        return f"failed: {exc!r}", None
    if noted.status_code != 202 or called.status_code != 200 or called.json().get("result") is None:
        return f"failed: initialized {noted.status_code}, call {called.status_code} {called.text[:200]}", None
    return "ok", sid


async def burst(gw: GatewayProcess) -> tuple[Counter[str], list[str]]:
    """SESSIONS sessions at once; the outcome counts and the opened session ids."""
    limits = httpx.Limits(max_connections=SESSIONS, max_keepalive_connections=SESSIONS)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        outcomes = await asyncio.gather(*(one_session(http, gw) for _ in range(SESSIONS)))
        sids = [sid for _, sid in outcomes if sid]
        ended = await asyncio.gather(*(http.delete(gw.url, headers={**gw.headers, **session_headers(sid)})
                                       for sid in sids))
        assert [r.status_code for r in ended] == [204] * len(sids)
        state = await http.get(f"{gw.base}/servers/echo/status", headers=gw.headers)
        assert state.json()["sessions"] == 0  # every DELETE ended its session
    return Counter(outcome for outcome, _ in outcomes), sids


async def test_a_thousand_sessions_at_once_all_succeed(start_gateway) -> None:
    outcomes, _ = await burst(start_gateway(SESSIONS))
    assert outcomes == Counter({"ok": SESSIONS})


async def test_beyond_the_cap_sessions_get_503_with_retry_after(start_gateway) -> None:
    cap = 300
    outcomes, _ = await burst(start_gateway(cap))
    # sessions stay open during the burst: exactly `cap` are admitted, none answered otherwise
    assert outcomes == Counter({"ok": cap, "refused": SESSIONS - cap})


# A stdio MCP server without the SDK that counts the messages it receives by method and
# answers `tools/call seen` with the counts (JSON).
COUNTING_SERVER = '''
import json, sys
seen = {}
for line in sys.stdin:
    message = json.loads(line)
    method = message.get("method")
    seen[method] = seen.get(method, 0) + 1
    if "id" not in message or method is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "counting", "version": "1"}}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": json.dumps(seen)}]}
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
'''


async def test_shared_initialize_never_reaches_the_child(gateway: GatewayUnderTest, tmp_path: Path) -> None:
    script = tmp_path / "counting.py"
    script.write_text(COUNTING_SERVER)
    spec = script_spec("counting", script)
    assert spec.package is not None
    spec.package.session_mode = SessionMode.SHARED
    gateway.put(spec)
    url = gateway.mcp_url("counting")
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await asyncio.gather(*(http.post(url, json=INIT, headers=JSON_ONLY) for _ in range(20)))
        assert {reply.status_code for reply in opened} == {200}
        assert {reply.json()["result"]["serverInfo"]["name"] for reply in opened} == {"counting"}
        sid = opened[0].headers["mcp-session-id"]
        await http.post(url, json=INITIALIZED, headers=session_headers(sid))
        call = {**CALL, "params": {"name": "seen", "arguments": {}}}
        reply = await http.post(url, json=call, headers=session_headers(sid))
    seen = reply.json()["result"]["content"][0]["text"]
    # the gateway's own handshake only: 20 sessions' initialize and initialized stayed in it
    assert seen == '{"initialize": 1, "notifications/initialized": 1, "tools/call": 1}'
