"""Benchmark: how long the APIM tier-change restore takes for a service with 50 APIs
against the fake at zero latency (issue 12, "Measure"; NFR-REL-005 allows 10 minutes).

The real `ApiManagementClient` talks to `tests.fakes.apim.FakeApim` (answers at once; the
service is `Succeeded` right after the tier change), and devhost runs the APIM functions
in this process. Each run changes the tier (the fake drops every entity, the custom
domain and the virtual network), posts the `ResourceWriteSuccess` event to devhost's
Event Grid webhook and waits until `apim_restore` has completed (applied and verified
every item, audited, taken the new snapshot). The peer, in the same run: the same
snapshot applied and verified by direct sequential calls of `activities.apim`, without
durable orchestration, i.e. the SDK and fake cost alone.
Usage: `python bench/apim_restore.py [--apis 50] [--runs 5]`. Prints medians; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities import apim  # noqa: E402
from devhost.host import create_app  # noqa: E402
from shared import apim as snapshots  # noqa: E402
from shared.auth.principal import Role  # noqa: E402
from shared.auth.tokens import LocalIssuer  # noqa: E402
from shared.blobs import open_artifacts  # noqa: E402
from shared.keyfiles import host_key  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from shared.store import get_store  # noqa: E402
from tests.fakes.apim import SERVICE_ID, FakeApim, fake_connect, seed  # noqa: E402
from tests.integration.devhost.conftest import free_port, serve  # noqa: E402

TIERS = ("Premium", "Developer")


def orchestrated(client: httpx.Client, fake: FakeApim, run: int) -> tuple[float, dict]:
    """One restore through Event Grid and `apim_restore`; (seconds, output)."""
    from triggers.apim import tier_change_instance

    fake.change_tier(TIERS[run % 2], updating_polls=0)
    start = time.perf_counter()
    client.post("/runtime/webhooks/eventgrid", params={"functionName": "apim_changed"}, json=[{
        "id": f"bench-{run}", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": SERVICE_ID,
        "eventTime": "2026-01-01T00:00:00Z", "dataVersion": "2",
        "data": {"operationName": "Microsoft.ApiManagement/service/write", "resourceUri": SERVICE_ID}}])
    operation = f"/api/operations/{tier_change_instance(f'event:bench-{run}')}"
    while True:
        body = client.get(operation).json()
        if body.get("runtimeStatus") in ("Completed", "Failed"):
            return time.perf_counter() - start, body["output"]
        time.sleep(0.005)


def direct(fake: FakeApim, snapshot: snapshots.Snapshot, run: int) -> float:
    """The same snapshot applied and verified by sequential direct calls; seconds."""
    fake.change_tier(TIERS[run % 2], updating_polls=0)
    start = time.perf_counter()
    service = apim.connect(SERVICE_ID)
    for phase in snapshot.phases():
        for key in phase:
            apim.apply_item(service, snapshot.item(key))
    assert not any(apim.verify_item(service, snapshot.item(key))["mismatched"]
                   for phase in snapshot.phases() for key in phase)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apis", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    os.environ.update({"MCPAAS_DATA_DIR": tempfile.mkdtemp(prefix="apim-bench-"), "MCPAAS_API_PORT": str(port),
                       "MCPAAS_APIM_SERVICE_ID": SERVICE_ID, "MCPAAS_APIM_POLL_SECONDS": "0.05"})
    get_settings.cache_clear()
    fake = FakeApim()
    seed(fake, apis=args.apis)
    apim.connect = fake_connect(fake)
    from tests.integration.apim.app import app

    settings = get_settings()
    server, thread = serve(create_app(app, settings), port)
    token = LocalIssuer(settings.auth_key_path).mint("bench", [Role.ADMIN])
    headers = {"Authorization": f"Bearer {token}", "x-functions-key": host_key(settings)}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=headers) as client:
        taken = apim.take_snapshot(SERVICE_ID)
        snapshot = snapshots.load(get_store(), open_artifacts(settings), "apim-mcpaas", taken["id"])
        entries = sum(len(item.entries) for item in snapshot.items)
        durable, plain = [], []
        for run in range(args.runs):
            seconds, output = orchestrated(client, fake, run)
            assert output["status"] == "Succeeded" and output["written"] == entries, output
            durable.append(seconds)
            plain.append(direct(fake, snapshot, run))  # same tier: the newest snapshot stays valid
    server.should_exit = True
    thread.join(10)
    print(f"service: {args.apis} APIs, {len(snapshot.items)} items, {entries} entries; {args.runs} runs")
    print(f"apim_restore (event -> verified, audited, new snapshot): median {statistics.median(durable):.3f} s")
    print(f"direct apply + verify, no orchestration (peer):          median {statistics.median(plain):.3f} s")
    print(f"ratio orchestrated / direct: {statistics.median(durable) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
