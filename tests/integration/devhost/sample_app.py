"""A small DFApp exercising what devhost must run (used in-process and via ``-m devhost``).

Side effects go to files named in the orchestration input so tests (and a restarted
devhost process) can count how often an activity really ran.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _json(value: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


# ---- HTTP starters and management, all through the SDK client -------------------------
@app.route(route="orchestrators/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["name"], req.params.get("id"),
                                         payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="status/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    found = await client.get_status(req.route_params["instance_id"],
                                    show_history=req.params.get("history") == "1")
    if not found:
        return _json({"found": False}, 404)
    body = found.to_json()
    body["history"] = getattr(found, "history", None)
    return _json(body)


@app.route(route="events/{instance_id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def send_event(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        body = req.get_body()
        await client.raise_event(req.route_params["instance_id"], req.route_params["event"],
                                 json.loads(body) if body else None)
    except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exception on 404 / 410
        return _json({"error": str(exc)}, 409)
    return _json({"raised": True}, 202)


@app.route(route="terminate/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.terminate(req.route_params["instance_id"], req.params.get("reason", "stop"))
    return _json({"terminated": True}, 202)


@app.route(route="hello/{name:alpha}/{greeting?}", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    greeting = req.route_params.get("greeting", "hello")
    return func.HttpResponse(f"{greeting} {req.route_params['name']} {req.params.get('x', '')}",
                             headers={"X-Sample": "1"})


@app.route(route="echo", methods=["POST", "PUT"])
async def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), status_code=201, mimetype="application/octet-stream")


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("kaboom")


# ---- orchestrators ----------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext):
    results = []
    for city in context.get_input() or ["Tokyo", "Seattle", "London"]:
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    tasks = [context.call_activity("double", n) for n in range(context.get_input())]
    first = yield context.task_any([context.call_activity("double", 100),
                                    context.call_activity("double", 200)])
    values = yield context.task_all(tasks)
    return {"sum": sum(values), "first": first.result}


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=50,
                              max_number_of_attempts=context.get_input()["attempts"])
    result = yield context.call_activity_with_retry("flaky", options, context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def timer_orch(context: df.DurableOrchestrationContext):
    args = context.get_input()
    yield context.call_activity("record", {"path": args["path"], "line": "before"})
    fire_at = context.current_utc_datetime + timedelta(seconds=args["seconds"])
    yield context.create_timer(fire_at)
    yield context.call_activity("record", {"path": args["path"], "line": "after"})
    return "timer done"


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "waiting"})
    answer = yield context.wait_for_external_event("Approval")
    context.set_custom_status({"stage": "approved"})
    return {"answer": answer}


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    event = context.wait_for_external_event("Go")
    winner = yield context.task_any([timer, event])
    if winner == event:
        timer.cancel()
        return "event"
    return "timeout"


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("say_hello", "x")
    raise ValueError("orchestrator broke")


@app.orchestration_trigger(context_name="context")
def activity_fails(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("explode", "first")
    except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exception
        caught = "activity said no" in str(exc)
    yield context.call_activity("explode", "second")
    return caught


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    child = yield context.call_sub_orchestrator("hello_sequence", ["Oslo"])
    return {"child": child}


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    n = context.get_input()
    if n >= 3:
        return n
    context.continue_as_new(n + 1)


@app.orchestration_trigger(context_name="context")
def blocking(context: df.DurableOrchestrationContext):
    args = context.get_input()
    first = yield context.call_activity("record", {"path": args["log"], "line": "one"})
    second = yield context.call_activity("wait_for_file", args)
    third = yield context.call_activity("record", {"path": args["log"], "line": "three"})
    return [first, second, third]


# ---- activities --------------------------------------------------------------------------
@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity_trigger(input_name="n")
async def double(n: int) -> int:
    return n * 2


@app.activity_trigger(input_name="args")
def flaky(args: dict) -> str:
    """Fail until the attempt file has ``fail_times`` lines, then succeed."""
    path = Path(args["path"])
    with path.open("a") as fh:
        fh.write("attempt\n")
    attempts = len(path.read_text().splitlines())
    if attempts <= args["fail_times"]:
        raise RuntimeError(f"attempt {attempts} failed")
    return f"succeeded on attempt {attempts}"


@app.activity_trigger(input_name="args")
def record(args: dict) -> str:
    with open(args["path"], "a") as fh:
        fh.write(args["line"] + "\n")
    return args["line"]


@app.activity_trigger(input_name="label")
def explode(label: str) -> str:
    raise PermissionError(f"activity said no ({label})")


@app.activity_trigger(input_name="args")
def wait_for_file(args: dict) -> str:
    """Log a start line, then block until ``release`` exists (lets a test kill us)."""
    with open(args["log"], "a") as fh:
        fh.write("two-started\n")
    release = Path(args["release"])
    while not release.exists():
        time.sleep(0.05)
    return "two"
