"""The production-shaped run vs the embedded run, same machine, same run (issue 11,
"Measure"), and the cost of a cross-replica hop.

- embedded: devhost + one gateway, SQLite, local auth (what `make run` starts);
- production-shaped (`tests.production_shaped`): devhost + two gateway replicas behind a
  round-robin proxy, the Cosmos emulator, Redis, Entra-mode auth against a local OIDC
  issuer, in its two shapes one after the other (two cores): package servers as
  separate single-server processes (the production shape, as pods on AKS), and as the
  replicas' own children.

Printed, as medians, each shape's figures measured alternating with the embedded run's:
time from `POST /api/servers` to `Running` (a new server name per deploy), `tools/call`
p50 of the echo server (sequential calls on one session) through each run's front door,
the extra cost of the package process (processes minus replica children), and, where
sessions are owned by a replica (replica children), the same session called on its
owning replica vs on the other one (the hop: forward + the owner's work).

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
from tests.production_shaped import ROLLOUT_POLL_SECONDS, ProductionShaped  # noqa: E402


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
        local = httpx.Client(headers=embedded.headers, timeout=60)
        try:
            embedded.start("gateway")
            embedded.start("devhost")
            results: dict[str, dict[str, list[float]]] = {EMBEDDED: {"deploy": [], "call": []}}
            hop: tuple[list[float], list[float]] = ([], [])
            for label, processes in ((PROCESSES, True), (CHILDREN, False)):  # one at a time: 2 cores
                with ProductionShaped(Path(root) / label.split()[-1], extra_env=NO_RATE_LIMITS,
                                      package_processes=processes) as prod:
                    results[label] = measure(local, embedded, prod, label, results[EMBEDDED], options)
                    if not processes:  # sessions owned by a replica exist in this shape only
                        hop = hop_times(prod, options.calls)
        finally:
            local.close()
            embedded.stop()
    report(results, hop, options)


EMBEDDED = "embedded"
PROCESSES = "production-shaped, package processes"
CHILDREN = "production-shaped, replica children"


def measure(local: httpx.Client, embedded: Platform, prod: ProductionShaped, label: str,
            baseline: dict[str, list[float]], options: argparse.Namespace) -> dict[str, list[float]]:
    """Deploy times and tools/call times of `prod`, alternating with the embedded run
    (whose figures are added to `baseline`) so drift hits both."""
    azure = httpx.Client(headers=prod.headers, timeout=60)
    tag = "p" if prod.package_processes else "c"
    deploys = []
    for number in range(options.deploys):
        baseline["deploy"].append(deploy_seconds(local, embedded.api, f"echo-{tag}{number}"))
        deploys.append(deploy_seconds(azure, prod.api, f"echo-{number}"))
    calls = []
    for _ in range(2):  # two blocks each, interleaved
        for http, endpoint, sink in ((local, f"{embedded.gateway}/servers/echo-{tag}0/mcp", baseline["call"]),
                                     (azure, f"{prod.proxy}/servers/echo-0/mcp", calls)):
            session = open_session(http, endpoint)
            call_times(http, endpoint, session, 20)  # warm-up
            sink += call_times(http, endpoint, session, options.calls // 2)
    azure.close()
    return {"deploy": deploys, "call": calls}


def hop_times(prod: ProductionShaped, calls: int) -> tuple[list[float], list[float]]:
    """One replica-owned session called on its owner vs on the other replica (the hop)."""
    azure = httpx.Client(headers=prod.headers, timeout=60)
    owner, other = (f"{base}/servers/echo-0/mcp" for base in prod.replicas)
    session = open_session(azure, owner)
    direct: list[float] = []
    hop: list[float] = []
    for _ in range(max(1, calls // 50)):  # interleaved blocks: drift hits both
        direct += call_times(azure, owner, session, 50)
        hop += call_times(azure, other, session, 50)
    azure.close()
    return direct, hop


def report(results: dict[str, dict[str, list[float]]], hop: tuple[list[float], list[float]],
           options: argparse.Namespace) -> None:
    """Print the medians and the ratios to the embedded run."""
    base = results[EMBEDDED]
    for key, title, unit in (("deploy", f"deploy POST -> Running, median of {options.deploys} per shape "
                              f"(package processes: rollout polled every {ROLLOUT_POLL_SECONDS} s)", "%8.1f"),
                             ("call", f"tools/call p50 over {options.calls} sequential calls per shape "
                              "(two sessions, one block each)", "%8.2f")):
        print(f"{title}:")
        for label, values in results.items():
            ratio = "" if label == EMBEDDED else f"   ratio to embedded {ms(values[key]) / ms(base[key]):.2f}"
            print(f"  {label:38} {unit % ms(values[key])} ms{ratio}")
    bridge = ms(results[PROCESSES]["call"]) - ms(results[CHILDREN]["call"])
    print(f"  the package process's own hop (processes - replica children): {bridge:+.2f} ms")
    direct, other = hop
    print("cross-replica hop (replica children: a session owned by one replica), same session, p50:")
    print(f"  on the owning replica   {ms(direct):8.2f} ms")
    print(f"  via the other replica   {ms(other):8.2f} ms   (hop cost {ms(other) - ms(direct):+.2f} ms, "
          f"ratio {ms(other) / ms(direct):.2f})")


if __name__ == "__main__":
    main()
