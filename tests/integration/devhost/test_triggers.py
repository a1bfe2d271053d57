"""devhost runs Service Bus, Event Grid and timer triggers with the real azure.functions types."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import httpx
import pytest

from devhost.host import create_app
from devhost.queues import MAX_DELIVERY_COUNT, LocalQueues
from devhost.timers import next_fire, parse_schedule
from shared.keyfiles import host_key
from shared.settings import Settings
from tests.integration.devhost.conftest import free_port, serve

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
seen: dict[str, list] = {"work": [], "grid": [], "tick": [], "yearly": []}


@app.service_bus_queue_trigger(arg_name="msg", queue_name="work", connection="ServiceBusConnection")
@app.durable_client_input(client_name="client")
async def work(msg: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    body = json.loads(msg.get_body())
    seen["work"].append((type(msg), msg.message_id, msg.delivery_count, msg.application_properties, body))
    if body["action"] == "fail" or (body["action"] == "flaky" and msg.delivery_count == 1):
        raise RuntimeError(f"cannot {body['action']}")
    if body["action"] == "quote":  # an error text that quotes the body, as validation errors may
        raise ValueError(f"refused {body}")
    if body["action"] == "start":
        await client.start_new("echo_input", msg.message_id, body)


@app.orchestration_trigger(context_name="context")
def echo_input(context: df.DurableOrchestrationContext):
    return context.get_input()
    yield  # a generator, as orchestrators are


@app.event_grid_trigger(arg_name="event")
def grid(event: func.EventGridEvent) -> None:
    seen["grid"].append(event)


@app.schedule(schedule="* * * * * *", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    seen["tick"].append(timer)


@app.schedule(schedule="0 0 0 1 1 *", arg_name="timer")
async def yearly(timer: func.TimerRequest) -> None:
    seen["yearly"].append(timer)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[httpx.Client]:
    for calls in seen.values():
        calls.clear()
    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", api_port=port)
    server, thread = serve(create_app(app, settings), port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                      headers={"x-functions-key": host_key(settings)}) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def eventually(check: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return result


def enqueue(host: httpx.Client, body: dict, **headers: str) -> dict:
    resp = host.post("/runtime/queues/work/messages", content=json.dumps(body),
                     headers={"Content-Type": "application/json", **headers})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_queue_message_reaches_function_as_service_bus_message(host: httpx.Client) -> None:
    sent = enqueue(host, {"action": "ok"}, BrokerProperties='{"MessageId": "m-1"}',
                   **{"Application-Properties": '{"tenant": "a"}'})
    assert sent["message_id"] == "m-1"
    kind, message_id, count, props, body = eventually(lambda: seen["work"])[0]
    assert issubclass(kind, func.ServiceBusMessage)
    assert (message_id, count, props, body) == ("m-1", 1, {"tenant": "a"}, {"action": "ok"})


def test_exception_abandons_and_message_is_redelivered(host: httpx.Client) -> None:
    enqueue(host, {"action": "flaky"})
    eventually(lambda: len(seen["work"]) == 2)
    assert [count for _, _, count, _, _ in seen["work"]] == [1, 2]
    time.sleep(0.3)
    assert len(seen["work"]) == 2  # completed on the second delivery: no third
    assert host.get("/runtime/queues/work/deadletter").json()["items"] == []


def test_max_delivery_count_dead_letters_with_reason_and_last_error(host: httpx.Client) -> None:
    enqueue(host, {"action": "fail"}, BrokerProperties='{"MessageId": "poison"}')
    items = eventually(lambda: host.get("/runtime/queues/work/deadletter").json()["items"])
    assert len(seen["work"]) == MAX_DELIVERY_COUNT
    [dead] = items
    assert dead["message_id"] == "poison"
    assert dead["delivery_count"] == MAX_DELIVERY_COUNT
    assert dead["dead_letter_reason"] == "MaxDeliveryCountExceeded"
    assert dead["last_error"] == "RuntimeError: cannot fail"
    assert json.loads(dead["body"]) == {"action": "fail"}


def test_durable_client_binding_works_on_queue_functions(host: httpx.Client) -> None:
    enqueue(host, {"action": "start", "n": 7}, BrokerProperties='{"MessageId": "orch-1"}')
    url = "/runtime/webhooks/durabletask/instances/orch-1"

    def completed() -> dict | None:
        resp = host.get(url)
        return resp.json() if resp.status_code == 200 and resp.json()["runtimeStatus"] == "Completed" else None
    assert eventually(completed)["output"] == {"action": "start", "n": 7}


def test_event_grid_validation_handshake_and_events(host: httpx.Client) -> None:
    validation = [{"id": "v", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                   "subject": "", "data": {"validationCode": "abc-123"}, "dataVersion": "1",
                   "eventTime": "2024-01-01T00:00:00Z"}]
    resp = host.post("/runtime/webhooks/eventgrid", params={"functionName": "grid"}, json=validation,
                     headers={"aeg-event-type": "SubscriptionValidation"})
    assert resp.json() == {"validationResponse": "abc-123"}
    assert seen["grid"] == []

    events = [{"id": f"e{i}", "topic": "/subscriptions/x", "subject": "servers/echo",
               "eventType": "Contoso.Changed", "eventTime": "2024-01-01T00:00:00Z",
               "data": {"n": i}, "dataVersion": "1.0"} for i in range(2)]
    resp = host.post("/runtime/webhooks/eventgrid", params={"functionName": "grid"}, json=events,
                     headers={"aeg-event-type": "Notification"})
    assert resp.status_code == 200
    assert [type(e) for e in seen["grid"]] == [func.EventGridEvent, func.EventGridEvent]
    assert [(e.id, e.event_type, e.subject, e.get_json()) for e in seen["grid"]] == [
        ("e0", "Contoso.Changed", "servers/echo", {"n": 0}), ("e1", "Contoso.Changed", "servers/echo", {"n": 1})]


def test_event_grid_cloudevents_single_batch_and_handshake(host: httpx.Client) -> None:
    options = host.options("/runtime/webhooks/eventgrid", headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert options.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    event = {"specversion": "1.0", "id": "c1", "source": "/mcpaas", "type": "Contoso.Ping", "data": {"x": 1}}
    single = host.post("/runtime/webhooks/eventgrid?functionName=grid", content=json.dumps(event),
                       headers={"Content-Type": "application/cloudevents+json"})
    batch = host.post("/runtime/webhooks/eventgrid?functionName=grid",
                      content=json.dumps([event, {**event, "id": "c2"}]),
                      headers={"Content-Type": "application/cloudevents-batch+json"})
    assert (single.status_code, batch.status_code) == (200, 200)
    assert [(e.id, e.type, e.get_json()) for e in seen["grid"]] == [
        ("c1", "Contoso.Ping", {"x": 1}), ("c1", "Contoso.Ping", {"x": 1}), ("c2", "Contoso.Ping", {"x": 1})]


def test_event_grid_unknown_function_and_bad_body(host: httpx.Client) -> None:
    assert host.post("/runtime/webhooks/eventgrid?functionName=nope", json=[]).status_code == 404
    assert host.post("/runtime/webhooks/eventgrid?functionName=grid", json=[1, 2]).status_code == 400


def test_timer_fires_on_schedule_with_timer_request(host: httpx.Client) -> None:
    eventually(lambda: len(seen["tick"]) >= 2, timeout=5)
    timer = seen["tick"][0]
    assert isinstance(timer, func.TimerRequest)
    assert timer.past_due is False
    assert "Next" in timer.schedule_status


def test_admin_endpoint_runs_a_timer_function_now(host: httpx.Client) -> None:
    assert host.post("/admin/functions/yearly", json={}).status_code == 202
    eventually(lambda: seen["yearly"])
    assert isinstance(seen["yearly"][0], func.TimerRequest)
    assert host.post("/admin/functions/nope", json={}).status_code == 404


def test_ncrontab_six_fields_seconds_first() -> None:
    from datetime import datetime, timezone
    start = datetime(2024, 1, 1, 9, 0, 0, tzinfo=timezone.utc)  # a Monday
    assert next_fire("*/15 * * * * *", start) == start.replace(second=15)
    assert next_fire("0 30 9 * * 1-5", start) == start.replace(minute=30)
    with pytest.raises(ValueError):
        parse_schedule("*/5 * * * *")  # five fields: not NCRONTAB


def test_locked_message_is_redelivered_after_a_crash(tmp_path: Path) -> None:
    queues = LocalQueues(tmp_path / "q.sqlite")
    queues.enqueue("work", b"{}", message_id="m")
    first = queues.receive("work")
    assert first is not None and first.message.delivery_count == 1
    queues.close()  # the process dies with the message locked
    reopened = LocalQueues(tmp_path / "q.sqlite")
    again = reopened.receive("work")
    assert again is not None and again.message.message_id == "m"
    assert again.message.delivery_count == 2
    reopened.complete(again)
    assert reopened.receive("work") is None and reopened.active_count("work") == 0
    reopened.close()


def test_explicit_dead_letter_keeps_reason_and_description(tmp_path: Path) -> None:
    queues = LocalQueues(tmp_path / "q.sqlite")
    queues.enqueue("work", b"bad")
    delivery = queues.receive("work")
    assert delivery is not None
    queues.dead_letter(delivery, "InvalidBody", "not JSON")
    [dead] = queues.dead_letters("work")
    assert (dead["dead_letter_reason"], dead["dead_letter_error_description"]) == ("InvalidBody", "not JSON")
    assert queues.receive("work") is None
    queues.close()


SECRET = "s3cr3t-value-0123456789"


def secret_request(action: str) -> dict:
    return {"action": action, "spec": {"package": {"secrets": {"API_TOKEN": {"value": SECRET}}}}}


def test_dead_lettered_body_error_and_log_keep_no_secret_value(host: httpx.Client, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    enqueue(host, secret_request("quote"), BrokerProperties='{"MessageId": "leaky"}')
    [dead] = eventually(lambda: host.get("/runtime/queues/work/deadletter").json()["items"])
    assert SECRET in str(seen["work"][0][4])  # the function did receive the value
    assert json.loads(dead["body"])["spec"]["package"]["secrets"] == {"API_TOKEN": {"value": "[REDACTED]"}}
    assert dead["last_error"].startswith("ValueError: refused") and "[REDACTED]" in dead["last_error"]
    assert SECRET not in json.dumps(dead) and SECRET not in caplog.text
    assert "leaky" in caplog.text  # the failures were logged, without the value
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()] == []


def test_completed_and_dead_lettered_bodies_leave_no_bytes_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    queues = LocalQueues(path)
    queues.enqueue("work", json.dumps(secret_request("ok")).encode())
    queues.enqueue("work", json.dumps(secret_request("refused")).encode())
    assert SECRET.encode() in path.read_bytes()  # while queued, the message is kept whole
    done, refused = queues.receive("work"), queues.receive("work")
    assert done is not None and refused is not None
    queues.complete(done)
    queues.dead_letter(refused, "Refused", f"because of {SECRET}")
    queues.close()
    assert SECRET.encode() not in path.read_bytes()
    reopened = LocalQueues(path)
    [dead] = reopened.dead_letters("work")
    assert dead["dead_letter_error_description"] == "because of [REDACTED]"
    assert json.loads(dead["body"])["action"] == "refused"
    reopened.close()
