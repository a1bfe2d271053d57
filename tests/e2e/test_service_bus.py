"""End to end: deploy requests through the local Service Bus queue of devhost."""

from __future__ import annotations

import json
import subprocess
import sys
import time


from tests.e2e.conftest import REPO
from tests.e2e.helpers import authed, stored, wait_status

QUEUE = "/runtime/queues/deploy-requests"
ECHO = {"name": "echo", "kind": "package", "description": "queued",
        "package": {"command": sys.executable, "args": ["-m", "catalog.echo.server"]}}


def enqueue(api: str, body: bytes | str, message_id: str | None = None) -> None:
    headers = {"Content-Type": "application/json"}
    if message_id:
        headers["BrokerProperties"] = json.dumps({"MessageId": message_id})
    response = authed.post(f"{api}{QUEUE}/messages", content=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text


def request(spec: dict, key: str) -> str:
    return json.dumps({"spec": spec, "requested_by": "alice", "idempotency_key": key})


def dead_letters(api: str, count: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = authed.get(f"{api}{QUEUE}/deadletter", timeout=10).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def test_cli_queue_deploy_starts_exactly_one_deploy(platform):
    done = subprocess.run([sys.executable, "-m", "cli", "deploy", "--queue", "-f", "-"], cwd=REPO,
                          env=platform.env(), input=json.dumps(ECHO), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Enqueued deploy of echo" in done.stdout
    server = wait_status(platform.api, "echo", {"Running", "Error"}, timeout=60)
    assert server["status"] == "Running", server
    assert [r["number"] for r in stored(platform.data_dir, "revisions")] == [1]
    [key] = stored(platform.data_dir, "idempotency_keys")
    assert key["server"] == "echo" and key["requested_by"]


def test_duplicate_idempotency_key_does_nothing(platform):
    enqueue(platform.api, request(ECHO, "key-1"), message_id="first")
    wait_status(platform.api, "echo", {"Running"}, timeout=60, revision=1)
    # Same key, changed spec: must be ignored. Messages are delivered in order, so once
    # the sentinel's server runs, the duplicate has been processed.
    enqueue(platform.api, request({**ECHO, "description": "changed"}, "key-1"), message_id="again")
    enqueue(platform.api, request({**ECHO, "name": "sentinel"}, "key-2"))
    wait_status(platform.api, "sentinel", {"Running"}, timeout=60)
    echo = authed.get(f"{platform.api}/api/servers/echo", timeout=10).json()
    assert (echo["latest_revision"], echo["spec"]["description"]) == (1, "queued")
    assert [r["server"] for r in stored(platform.data_dir, "revisions")].count("echo") == 1
    audit = [e for e in stored(platform.data_dir, "audit") if e["entity"] == "echo"]
    assert {e["actor"] for e in audit} == {"alice"}
    assert authed.get(f"{platform.api}{QUEUE}/deadletter", timeout=10).json()["items"] == []


def test_malformed_and_invalid_requests_are_dead_lettered_with_the_reason(platform):
    enqueue(platform.api, "not json", message_id="garbage")
    enqueue(platform.api, request({**ECHO, "name": "Bad_Name"}, "key-3"), message_id="invalid")
    enqueue(platform.api, json.dumps({"spec": ECHO}), message_id="incomplete")
    items = {item["message_id"]: item for item in dead_letters(platform.api, 3)}
    assert set(items) == {"garbage", "invalid", "incomplete"}
    assert all(i["dead_letter_reason"] == "MaxDeliveryCountExceeded" for i in items.values())
    assert items["garbage"]["last_error"].startswith("PoisonMessageError: invalid deploy request: (body)")
    assert "spec.name" in items["invalid"]["last_error"]
    assert "requested_by: Field required" in items["incomplete"]["last_error"]
    assert "idempotency_key: Field required" in items["incomplete"]["last_error"]
    assert authed.get(f"{platform.api}/api/servers", timeout=10).json()["items"] == []
    assert stored(platform.data_dir, "idempotency_keys") == []
