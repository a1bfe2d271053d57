"""End to end: deploy requests through the local Service Bus queue of devhost.

A request carries its sender's credential in the `Authorization` application property
and is authenticated, authorized and audited like `POST /api/servers` (issue 10,
NFR-SEC-004); the queue endpoint itself needs devhost's host key.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from tests.e2e.conftest import REPO, Platform
from tests.e2e.helpers import authed, lifecycle_events, stored, wait_status
from tests.e2e.test_secrets import files_holding

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # clearance opt-ins (tests/e2e/conftest.py)

QUEUE = "/runtime/queues/deploy-requests"
ECHO = {"name": "echo", "kind": "package", "description": "queued",
        "package": {"command": "python", "args": ["-m", "catalog.echo.server"]}}


def enqueue(platform: Platform, body: bytes | str, message_id: str | None = None,
            credential: str | None = None) -> None:
    headers = {"Content-Type": "application/json", "x-functions-key": platform.host_key}
    if message_id:
        headers["BrokerProperties"] = json.dumps({"MessageId": message_id})
    if credential is not None:
        headers["Application-Properties"] = json.dumps({"Authorization": credential})
    response = httpx.post(f"{platform.api}{QUEUE}/messages", content=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text


def request(spec: dict, key: str, **extra: str) -> str:
    return json.dumps({"spec": spec, "idempotency_key": key, **extra})


def developer(platform: Platform, user: str = "dev-alice") -> str:
    return f"Bearer {platform.token(user, Role.DEVELOPER)}"


def dead_letters(platform: Platform, count: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = httpx.get(f"{platform.api}{QUEUE}/deadletter", timeout=10,
                          headers={"x-functions-key": platform.host_key}).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def test_cli_queue_deploy_runs_as_the_cli_credential_and_is_audited_under_it(platform):
    env = {**platform.env(), "MCPAAS_TOKEN": platform.token("dev-alice", Role.DEVELOPER)}
    done = subprocess.run([sys.executable, "-m", "cli", "deploy", "--queue", "-f", "-"], cwd=REPO,
                          env=env, input=json.dumps(ECHO), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Enqueued deploy of echo" in done.stdout
    server = wait_status(platform.api, "echo", {"Running", "Error"}, timeout=60)
    assert server["status"] == "Running", server
    assert [r["number"] for r in stored(platform.data_dir, "revisions")] == [1]
    [key] = stored(platform.data_dir, "idempotency_keys")
    assert key["server"] == "echo" and key["requested_by"] == "dev-alice"
    audit = [e for e in stored(platform.data_dir, "audit") if e["entity"] == "echo"]
    assert {e["actor"] for e in audit} == {"dev-alice"}
    assert {(e["action"], e["result"]) for e in audit} >= {("server.create", "allowed"),
                                                           ("server.create", "succeeded")}


def test_cli_queue_deploy_without_a_credential_sends_nothing(platform):
    env = {k: v for k, v in platform.env().items() if k != "MCPAAS_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "cli", "deploy", "--queue", "-f", "-"], cwd=REPO,
                          env=env, input=json.dumps(ECHO), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "credential" in done.stderr
    assert devhost_queue_is_empty(platform)


def devhost_queue_is_empty(platform: Platform) -> bool:
    return dead_letters(platform, 0) == [] and stored(platform.data_dir, "idempotency_keys") == []


def test_duplicate_idempotency_key_does_nothing(platform):
    enqueue(platform, request(ECHO, "key-1"), message_id="first", credential=developer(platform))
    wait_status(platform.api, "echo", {"Running"}, timeout=60, revision=1)
    # Same key, changed spec: must be ignored. Messages are delivered in order, so once
    # the sentinel's server runs, the duplicate has been processed.
    enqueue(platform, request({**ECHO, "description": "changed"}, "key-1"), message_id="again",
            credential=developer(platform))
    enqueue(platform, request({**ECHO, "name": "sentinel"}, "key-2"), credential=developer(platform))
    wait_status(platform.api, "sentinel", {"Running"}, timeout=60)
    echo = authed.get(f"{platform.api}/api/servers/echo", timeout=10).json()
    assert (echo["latest_revision"], echo["spec"]["description"]) == (1, "queued")
    assert [r["server"] for r in stored(platform.data_dir, "revisions")].count("echo") == 1
    audit = [e for e in stored(platform.data_dir, "audit") if e["entity"] == "echo"]
    assert {e["actor"] for e in audit} == {"dev-alice"}
    assert dead_letters(platform, 0) == []


def test_refused_requests_are_dead_lettered_with_the_reason_audited_and_never_applied(platform, tmp_path):
    forger = LocalIssuer(tmp_path / "someone-elses-key.pem")
    refused = {
        "no-credential": (None, "unauthenticated: missing bearer token or API key"),
        "not-bearer": ("Basic YWxpY2U6cHc=", "unauthenticated"),
        "forged": (f"Bearer {forger.mint('mallory', [Role.ADMIN])}", "unauthenticated"),
        "expired": (f"Bearer {platform.issuer.mint('dev-alice', [Role.DEVELOPER], lifetime_s=-3600)}",
                    "unauthenticated"),
        "reader": (f"Bearer {platform.token('rita', Role.READER)}", "server.create denied"),
        "other-team": (developer(platform, "dev-bob"), "server.create denied"),
    }
    for message_id, (credential, _) in refused.items():
        spec = {**ECHO, "owner_team": "payments"} if message_id == "other-team" else ECHO
        enqueue(platform, request(spec, f"key-{message_id}"), message_id=message_id, credential=credential)
    # the body may not name its own actor any more
    enqueue(platform, request(ECHO, "key-asserted", requested_by="dev-alice"), message_id="asserted",
            credential=developer(platform))
    enqueue(platform, "not json", message_id="garbage", credential=developer(platform))
    enqueue(platform, request({**ECHO, "name": "Bad_Name"}, "key-3"), message_id="invalid",
            credential=developer(platform))
    items = {item["message_id"]: item for item in dead_letters(platform, len(refused) + 3)}
    assert set(items) == {*refused, "asserted", "garbage", "invalid"}
    assert all(i["dead_letter_reason"] == "MaxDeliveryCountExceeded" for i in items.values())
    for message_id, (_, reason) in refused.items():
        assert items[message_id]["last_error"].startswith(f"PoisonMessageError: {reason}"), items[message_id]
    assert "requested_by: Extra inputs are not permitted" in items["asserted"]["last_error"]
    assert items["garbage"]["last_error"].startswith("PoisonMessageError: invalid deploy request: (body)")
    assert "spec.name" in items["invalid"]["last_error"]
    # credentials never come back in the dead-letter listing
    assert "[REDACTED]" in items["reader"]["application_properties"]["Authorization"]
    assert platform.token("rita", Role.READER).split(".")[0] not in json.dumps(items)
    # nothing was applied
    assert authed.get(f"{platform.api}/api/servers", timeout=10).json()["items"] == []
    assert stored(platform.data_dir, "idempotency_keys") == []
    # each refusal is audited once (not once per delivery), under the credential's subject if any
    events = [e for e in stored(platform.data_dir, "audit")
              if (e.get("operation_id") or "").startswith("deploy-request.")]
    refusals = {e["operation_id"]: e for e in events}
    assert len(events) == len(refusals) == len(items)
    assert set(refusals) == {f"deploy-request.{m}" for m in items}
    actors = {m: refusals[f"deploy-request.{m}"]["actor"] for m in items}
    assert actors == {"no-credential": "anonymous", "not-bearer": "anonymous", "forged": "anonymous",
                      "expired": "anonymous", "reader": "rita", "other-team": "dev-bob",
                      "asserted": "dev-alice", "garbage": "dev-alice", "invalid": "dev-alice"}
    assert refusals["deploy-request.reader"]["result"] == "denied"
    assert refusals["deploy-request.forged"]["result"] == "refused"


def test_the_queue_endpoint_needs_the_host_key(platform):
    response = httpx.post(f"{platform.api}{QUEUE}/messages", content=request(ECHO, "k"),
                          headers={"Application-Properties": json.dumps({"Authorization": developer(platform)})},
                          timeout=10)
    assert response.status_code == 401
    # a user's bearer token is not the host key either
    response = httpx.post(f"{platform.api}{QUEUE}/messages", content=request(ECHO, "k"), timeout=10,
                          headers={"Authorization": f"Bearer {platform.token()}"})
    assert response.status_code == 401
    assert dead_letters(platform, 0) == []
    assert authed.get(f"{platform.api}/api/servers", timeout=10).json()["items"] == []


def test_a_secret_value_sent_through_the_queue_is_kept_nowhere_but_the_secret_store(platform):
    """A refused message carrying a write-only value is dead-lettered without it; an accepted
    one is sealed and its completed body leaves no bytes behind (docs/secrets.md)."""
    refused_value, accepted_value = f"refused-{uuid.uuid4().hex}", f"accepted-{uuid.uuid4().hex}"

    def with_secret(value: str, **changes: str) -> dict:
        return {**ECHO, **changes, "package": {**ECHO["package"], "secrets": {"API_TOKEN": {"value": value}}}}

    reader = f"Bearer {platform.token('rita', Role.READER)}"
    enqueue(platform, request(with_secret(refused_value), "key-denied"), message_id="denied", credential=reader)
    # a spec error whose message could quote the input: the value stays out of last_error too
    enqueue(platform, request(with_secret(refused_value, name="Bad_Name"), "key-bad"), message_id="bad",
            credential=developer(platform))
    enqueue(platform, request(with_secret(accepted_value), "key-ok"), message_id="ok",
            credential=developer(platform))
    items = {item["message_id"]: item for item in dead_letters(platform, 2)}
    assert set(items) == {"denied", "bad"}
    assert json.loads(items["denied"]["body"])["spec"]["package"]["secrets"] == {"API_TOKEN": {"value": "[REDACTED]"}}
    server = wait_status(platform.api, "echo", {"Running", "Error"}, timeout=60)
    assert server["status"] == "Running", server
    sealed = server["spec"]["package"]["secrets"]["API_TOKEN"]
    assert sealed["value"] is None and sealed["ref"].startswith("mcpaas-secret://")

    operations = {e["operation_id"] for e in lifecycle_events(platform.data_dir)}
    assert operations
    paths = [f"{QUEUE}/deadletter", "/api/servers", "/api/servers/echo", "/api/servers/echo/revisions",
             "/api/audit", *[f"/api/operations/{op}" for op in operations]]
    responses = [httpx.get(f"{platform.api}{path}", timeout=10,
                           headers={**platform.headers, "x-functions-key": platform.host_key}) for path in paths]
    assert all(r.status_code == 200 for r in responses), [(r.url, r.status_code) for r in responses]
    assert [r.url for r in responses if refused_value in r.text or accepted_value in r.text] == []
    # logs, queues.sqlite, the SQLite store, durable state: nothing outside the encrypted store
    assert files_holding(platform.data_dir, [refused_value.encode(), accepted_value.encode()]) == []
