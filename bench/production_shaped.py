"""The production-shaped run vs the embedded run, same machine, same run (issue 11,
"Measure"), and the cost of a cross-replica hop.

- embedded: devhost + one gateway, SQLite, local auth (what `make run` starts);
- production-shaped: devhost + two gateway replicas behind a round-robin proxy, the
  Cosmos emulator, Redis, Entra-mode auth against a local OIDC issuer
  (`tests.production_shaped`).

Printed, as medians: time from `POST /api/servers` to `Running` (a new server name per
deploy), `tools/call` p50 of the echo server (one session, sequential calls) through
each run's front door, and on the production-shaped run the same session called on its
owning replica directly vs on the other replica (the hop: forward + the owner's work).

Run: `make bench-production` (or `.venv/bin/python bench/production_shaped.py
[--deploys N] [--calls N]`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import Platform, free_port  # noqa: E402
from tests.integration.gateway.helpers import INIT, INITIALIZED, session_headers  # noqa: E402
from tests.production_shaped import ProductionShaped  # noqa: E402


# the bench's sequential calls exceed the default per-identity and per-server limits
NO_RATE_LIMITS = {"MCPAAS_GATEWAY_RATE_LIMIT_IDENTITY": "", "MCPAAS_GATEWAY_RATE_LIMIT_SERVER": ""}


def spec(name: str) -> dict:
    return {"name": name, "kind": "package",
            "package": {"command": "python", "args": ["-m", "catalog.echo.server"], "session_mode": "isolated"}}


def deploy_seconds(http: httpx.Client, api: str, name: str) -> float:
    """Seconds from `POST /api/servers` to `GET` saying Running. Raises on Error/timeout."""
    started = time.perf_counter()
    answer = http.post(f"{api}/api/servers", json=spec(name))
    answer.raise_for_status()
    deadline = started + 120
    while time.perf_counter() < deadline:
        status = http.get(f"{api}/api/servers/{name}").json().get("status")
        if status == "Running":
            return time.perf_counter() - started
        if status == "Error":
            raise RuntimeError(f"{name} failed to deploy")
        time.sleep(0.02)
    raise TimeoutError(f"{name} not Running after 120 s")


def open_session(http: httpx.Client, endpoint: str) -> str:
    reply = http.post(endpoint, json=INIT, headers={"accept": "application/json"})
    reply.raise_for_status()
    session = reply.headers["mcp-session-id"]
    http.post(endpoint, json=INITIALIZED, headers=session_headers(session)).raise_for_status()
    return session


def call_times(http: httpx.Client, endpoint: str, session: str, calls: int) -> list[float]:
    """Seconds per sequential `tools/call` echo on `session`."""
    times = []
    for number in range(calls):
        message = {"jsonrpc": "2.0", "id": number + 10, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"message": "hi"}}}
        started = time.perf_counter()
        reply = http.post(endpoint, json=message, headers=session_headers(session))
        times.append(time.perf_counter() - started)
        reply.raise_for_status()
    return times


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deploys", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcpaas-bench-") as root:
        embedded = Platform(Path(root) / "embedded", free_port(), free_port(), auth_env=NO_RATE_LIMITS)
        embedded.data_dir.mkdir()
        embedded.token()  # creates the signing key both embedded processes trust
        try:
            embedded.start("gateway")
            embedded.start("devhost")
            with ProductionShaped(Path(root) / "prod", extra_env=NO_RATE_LIMITS) as prod:
                report(embedded, prod, options.deploys, options.calls)
        finally:
            embedded.stop()


def report(embedded: Platform, prod: ProductionShaped, deploys: int, calls: int) -> None:
    """Measure both runs, alternating, and print the medians."""
    local = httpx.Client(headers=embedded.headers, timeout=60)
    azure = httpx.Client(headers=prod.headers, timeout=60)
    deploy = {"embedded": [], "production-shaped": []}
    for number in range(deploys):  # alternate so drift hits both
        deploy["embedded"].append(deploy_seconds(local, embedded.api, f"echo-{number}"))
        deploy["production-shaped"].append(deploy_seconds(azure, prod.api, f"echo-{number}"))
    endpoints = {"embedded": (local, f"{embedded.gateway}/servers/echo-0/mcp"),
                 "production-shaped": (azure, f"{prod.proxy}/servers/echo-0/mcp")}
    call = {}
    for label, (http, endpoint) in endpoints.items():
        session = open_session(http, endpoint)
        call_times(http, endpoint, session, 20)  # warm-up
        call[label] = call_times(http, endpoint, session, calls)
    owner, other = (f"{base}/servers/echo-0/mcp" for base in prod.replicas)
    session = open_session(azure, owner)
    direct, hop = [], []
    for _ in range(calls // 50):  # interleaved blocks: drift hits both
        direct += call_times(azure, owner, session, 50)
        hop += call_times(azure, other, session, 50)
    print(f"deploy POST -> Running, median of {deploys}:")
    for label, values in deploy.items():
        print(f"  {label:18} {ms(values):8.1f} ms")
    print(f"  ratio production-shaped / embedded: {ms(deploy['production-shaped']) / ms(deploy['embedded']):.2f}")
    print(f"tools/call p50 over {calls} sequential calls on one session:")
    for label, values in call.items():
        print(f"  {label:18} {ms(values):8.2f} ms")
    print(f"  ratio production-shaped / embedded: {ms(call['production-shaped']) / ms(call['embedded']):.2f}")
    print("cross-replica hop, same session, p50:")
    print(f"  on the owning replica   {ms(direct):8.2f} ms")
    print(f"  via the other replica   {ms(hop):8.2f} ms   (hop cost {ms(hop) - ms(direct):+.2f} ms, "
          f"ratio {ms(hop) / ms(direct):.2f})")
    local.close()
    azure.close()


if __name__ == "__main__":
    main()
