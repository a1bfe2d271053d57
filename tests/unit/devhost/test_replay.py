"""Replay episodes against the real SDK with hand-built histories."""

from __future__ import annotations

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

from devhost.durable import events as ev
from devhost.durable.functions import DurableFunctions
from devhost.durable.replay import context_json, run_episode

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def with_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=250, max_number_of_attempts=3)
    value = yield context.call_activity_with_retry("work", options, {"n": 1})
    return value


@app.orchestration_trigger(context_name="context")
def broken(context: df.DurableOrchestrationContext):
    context.set_custom_status("about to fail")
    raise KeyError("missing thing")
    yield  # pragma: no cover - makes this a generator


@app.activity_trigger(input_name="args")
def work(args: dict) -> int:
    return args["n"]


HANDLES = DurableFunctions.from_app(app).orchestrators
NOW = ev.utcnow()


def _episode(name: str, old: list[dict], new: list[dict]):
    body = context_json("i1", None, None, old, new)
    return run_episode(HANDLES[name], body, old, NOW)


def test_first_episode_schedules_activity_zero() -> None:
    new = [ev.orchestrator_started(NOW), ev.execution_started(NOW, "with_retry", None)]
    outcome = _episode("with_retry", [], new)
    assert not outcome.done
    assert [(w.kind, w.task_id, w.name, w.input) for w in outcome.work] == \
        [("activity", 0, "work", '{"n": 1}')]


def test_failure_asks_for_retry_timer_then_new_attempt() -> None:
    old = [ev.orchestrator_started(NOW), ev.execution_started(NOW, "with_retry", None),
           ev.task_scheduled(NOW, 0, "work", '{"n": 1}'), ev.orchestrator_completed(NOW)]
    failed = [ev.orchestrator_started(NOW), ev.task_failed(NOW, 0, "nope", "")]
    outcome = _episode("with_retry", old, failed)
    assert [(w.kind, w.task_id) for w in outcome.work] == [("timer", 1)]
    assert outcome.work[0].fire_at == NOW + timedelta(milliseconds=250)

    old += failed + [ev.timer_created(NOW, 1, NOW), ev.orchestrator_completed(NOW)]
    fired = [ev.orchestrator_started(NOW), ev.timer_fired(NOW, 1, ev.fmt(NOW))]
    outcome = _episode("with_retry", old, fired)
    assert [(w.kind, w.task_id, w.name) for w in outcome.work] == [("activity", 2, "work")]

    old += fired + [ev.task_scheduled(NOW, 2, "work", '{"n": 1}'),
                    ev.orchestrator_completed(NOW)]
    outcome = _episode("with_retry", old, [ev.orchestrator_started(NOW),
                                           ev.task_completed(NOW, 2, "1")])
    assert outcome.done and outcome.output == 1 and outcome.error is None


def test_already_scheduled_work_is_not_requested_again() -> None:
    old = [ev.orchestrator_started(NOW), ev.execution_started(NOW, "with_retry", None),
           ev.task_scheduled(NOW, 0, "work", '{"n": 1}'), ev.orchestrator_completed(NOW)]
    outcome = _episode("with_retry", old, [ev.orchestrator_started(NOW)])
    assert outcome.work == [] and not outcome.done


def test_orchestrator_exception_becomes_error_with_custom_status() -> None:
    new = [ev.orchestrator_started(NOW), ev.execution_started(NOW, "broken", None)]
    outcome = _episode("broken", [], new)
    assert outcome.done
    assert "missing thing" in (outcome.error or "")
    assert outcome.custom_status == "about to fail"
