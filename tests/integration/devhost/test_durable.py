"""Durable orchestrations through the real SDK client, served by devhost over HTTP."""

from __future__ import annotations

import time
from collections import Counter

from tests.integration.devhost.conftest import Devhost

WEBHOOK = "/runtime/webhooks/durabletask"


def _start(devhost: Devhost, name: str, payload: object = None,
           instance_id: str | None = None) -> str:
    resp = devhost.start(name, payload, instance_id)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def _types(history: list[dict]) -> Counter:
    return Counter(e["EventType"] for e in history)


def test_activity_sequence_completes_with_check_status_response(devhost: Devhost) -> None:
    resp = devhost.start("hello_sequence")
    assert resp.status_code == 202
    body = resp.json()
    assert resp.headers["location"] == body["statusQueryGetUri"]
    assert body["statusQueryGetUri"].startswith(f"{devhost.url}{WEBHOOK}/instances/{body['id']}")
    assert "{eventName}" in body["sendEventPostUri"]

    done = devhost.wait(body["id"])
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    # The management URL handed out by create_check_status_response really works.
    direct = devhost.client.get(body["statusQueryGetUri"])
    assert direct.status_code == 200
    assert direct.json()["runtimeStatus"] == "Completed"

    history = devhost.status(body["id"], history=True)["history"]
    scheduled = [e["EventId"] for e in history if e["EventType"] == 4]
    assert scheduled == [0, 1, 2]
    assert _types(history)[0] == 1 and _types(history)[1] == 1  # one start, one completion


def test_input_reaches_orchestrator_and_status(devhost: Devhost) -> None:
    instance_id = _start(devhost, "hello_sequence", ["Paris"], instance_id="with-input")
    assert instance_id == "with-input"
    done = devhost.wait(instance_id)
    assert done["output"] == ["Hello Paris!"]
    assert done["input"] == '["Paris"]'  # as Azure reports SDK-started inputs


def test_fan_out_fan_in_with_task_any(devhost: Devhost) -> None:
    done = devhost.wait(_start(devhost, "fan_out", 5))
    assert done["runtimeStatus"] == "Completed"
    assert done["output"]["sum"] == 20
    assert done["output"]["first"] in (200, 400)


def test_retry_fails_twice_then_succeeds(devhost: Devhost) -> None:
    attempts = devhost.data_dir / "attempts.txt"
    done = devhost.wait(_start(devhost, "retrying",
                               {"path": str(attempts), "fail_times": 2, "attempts": 3}))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == "succeeded on attempt 3"
    assert attempts.read_text().splitlines() == ["attempt"] * 3
    history = devhost.status(done["instanceId"], history=True)["history"]
    kinds = _types(history)
    assert (kinds[4], kinds[6], kinds[10], kinds[11], kinds[5]) == (3, 2, 2, 2, 1)
    # Ids run like DTFx's RetryInterceptor: task 0, timer 1, task 2, timer 3, task 4.
    assert [e["EventId"] for e in history if e["EventType"] in (4, 10)] == [0, 1, 2, 3, 4]


def test_retry_exhausted_fails_the_orchestration(devhost: Devhost) -> None:
    attempts = devhost.data_dir / "attempts.txt"
    done = devhost.wait(_start(devhost, "retrying",
                               {"path": str(attempts), "fail_times": 9, "attempts": 2}))
    assert done["runtimeStatus"] == "Failed"
    assert "attempt 2 failed" in done["output"]
    assert len(attempts.read_text().splitlines()) == 2


def test_durable_timer_waits_then_continues(devhost: Devhost) -> None:
    log = devhost.data_dir / "timer.txt"
    began = time.monotonic()
    done = devhost.wait(_start(devhost, "timer_orch", {"path": str(log), "seconds": 1}))
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == "timer done"
    assert time.monotonic() - began >= 1.0
    assert log.read_text().splitlines() == ["before", "after"]


def test_external_event_and_custom_status(devhost: Devhost) -> None:
    instance_id = _start(devhost, "approval")
    waiting = devhost.wait(instance_id, until={"Running"})
    for _ in range(100):  # the custom status is set by the first episode
        if waiting.get("customStatus"):
            break
        time.sleep(0.05)
        waiting = devhost.status(instance_id)
    assert waiting["customStatus"] == {"stage": "waiting"}

    sent = devhost.client.post(f"/api/events/{instance_id}/Approval", json={"ok": True})
    assert sent.status_code == 202, sent.text
    done = devhost.wait(instance_id)
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == {"answer": {"ok": True}}
    assert done["customStatus"] == {"stage": "approved"}

    again = devhost.client.post(f"/api/events/{instance_id}/Approval", json=1)
    assert again.status_code == 409 and "gone" in again.json()["error"]


def test_event_wins_race_and_cancels_timer(devhost: Devhost) -> None:
    instance_id = _start(devhost, "race")
    devhost.wait(instance_id, until={"Running"})
    assert devhost.client.post(f"/api/events/{instance_id}/Go", json=None).status_code == 202
    done = devhost.wait(instance_id)
    assert done["output"] == "event"
    store = devhost.app.state.engine.store
    assert store.next_timer_at() is None  # the 30 s timer was withdrawn


def test_event_raised_before_wait_is_kept(devhost: Devhost) -> None:
    instance_id = _start(devhost, "approval")
    # Raised while possibly still Pending: DTFx keeps it in history; the SDK defers it.
    assert devhost.client.post(f"/api/events/{instance_id}/Approval", json="early"
                               ).status_code == 202
    assert devhost.wait(instance_id)["output"] == {"answer": "early"}


def test_orchestrator_exception_fails_with_message(devhost: Devhost) -> None:
    done = devhost.wait(_start(devhost, "failing"))
    assert done["runtimeStatus"] == "Failed"
    assert "orchestrator broke" in done["output"]


def test_activity_exception_is_catchable_then_fails(devhost: Devhost) -> None:
    done = devhost.wait(_start(devhost, "activity_fails"))
    assert done["runtimeStatus"] == "Failed"
    assert "activity said no (second)" in done["output"]
    history = devhost.status(done["instanceId"], history=True)["history"]
    failures = [e for e in history if e["EventType"] == 6]
    assert [e["Reason"] for e in failures] == ["activity said no (first)",
                                               "activity said no (second)"]
    assert "PermissionError" in failures[0]["Details"]


def test_terminate_running_instance(devhost: Devhost) -> None:
    instance_id = _start(devhost, "approval")
    devhost.wait(instance_id, until={"Running"})
    resp = devhost.client.post(f"/api/terminate/{instance_id}", params={"reason": "enough"})
    assert resp.status_code == 202
    done = devhost.wait(instance_id)
    assert done["runtimeStatus"] == "Terminated"
    assert done["output"] == "enough"
    direct = devhost.client.post(f"{WEBHOOK}/instances/{instance_id}/terminate?reason=x")
    assert direct.status_code == 410
    assert devhost.client.post(f"{WEBHOOK}/instances/nope/terminate").status_code == 404


def test_sub_orchestration(devhost: Devhost) -> None:
    done = devhost.wait(_start(devhost, "parent"))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == {"child": ["Hello Oslo!"]}
    child = devhost.status(f"{done['instanceId']}:0")
    assert child["runtimeStatus"] == "Completed"


def test_continue_as_new(devhost: Devhost) -> None:
    done = devhost.wait(_start(devhost, "counter", 0))
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == 3


def test_management_api_errors(devhost: Devhost) -> None:
    first = devhost.client.post(f"{WEBHOOK}/orchestrators/approval/dup", json=None)
    assert first.status_code == 202 and first.json()["id"] == "dup"
    second = devhost.client.post(f"{WEBHOOK}/orchestrators/approval/dup", json=None)
    assert second.status_code == 409
    unknown = devhost.client.post(f"{WEBHOOK}/orchestrators/nope", json=None)
    assert unknown.status_code == 400 and "nope" in unknown.json()["ExceptionMessage"]
    assert devhost.client.get(f"{WEBHOOK}/instances/missing").status_code == 404
    assert devhost.client.post(f"{WEBHOOK}/instances/missing/raiseEvent/x",
                               json=None).status_code == 404
    # Through the SDK: an unknown instance is a falsy status; a bad name raises.
    assert devhost.client.get("/api/status/missing").json() == {"found": False}
    assert devhost.start("nope").status_code == 500
    listed = devhost.client.get(f"{WEBHOOK}/instances/").json()
    assert [i["instanceId"] for i in listed] == ["dup"]
