"""The Event Grid webhook for ``eventGridTrigger`` functions (DESIGN.md "devhost").

``POST /runtime/webhooks/eventgrid?functionName=NAME`` as the Functions host serves it
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-event-grid-trigger):

* Event Grid schema: a JSON array of events. A ``SubscriptionValidation`` delivery
  (header ``aeg-event-type: SubscriptionValidation`` or an event of type
  ``Microsoft.EventGrid.SubscriptionValidationEvent``) answers
  ``{"validationResponse": code}`` without calling the function.
* CloudEvents 1.0: one structured event (``application/cloudevents+json``) or a batch
  (a JSON array); ``OPTIONS`` answers the abuse-protection handshake with
  ``WebHook-Allowed-Origin`` (https://github.com/cloudevents/spec/blob/v1.0/http-webhook.md).

Each event is decoded by the worker's own converter (``EventGridEventInConverter``), so
the function receives a real ``azure.functions.EventGridEvent`` (a ``CloudEvent`` for
CloudEvents input, as the Python worker does) and is called once per event. Answers
200 when every call returned; 500 if one raised (Event Grid then retries the delivery);
404 for an unknown function; 400 for a body that is not an event or array of events.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devhost.invoke import FunctionTarget, collect_targets, invoke
from devhost.problems import problem

log = logging.getLogger("devhost.eventgrid")

WEBHOOK_PATH = "/runtime/webhooks/eventgrid"
_VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


class EventGridWebhook:
    """Starlette routes delivering Event Grid / CloudEvents to the app's functions.

    Args:
        app: the FunctionApp; client_json: the durable client binding JSON string.
    """

    def __init__(self, app: func.FunctionApp, client_json: str) -> None:
        self.targets = collect_targets(app, "eventGridTrigger")
        self._client_json = client_json

    def routes(self) -> list[Route]:
        """The webhook route (POST deliveries, OPTIONS handshake)."""
        return [Route(WEBHOOK_PATH, self._deliver, methods=["POST"]),
                Route(WEBHOOK_PATH, self._handshake, methods=["OPTIONS"])]

    async def _handshake(self, request: Request) -> Response:
        origin = request.headers.get("WebHook-Request-Origin", "*")
        return Response(status_code=200, headers={"WebHook-Allowed-Origin": origin,
                                                  "WebHook-Allowed-Rate": "*"})

    async def _deliver(self, request: Request) -> Response:
        name = request.query_params.get("functionName", "")
        target = self.targets.get(name)
        if target is None:
            return problem(404, "Not Found", f"no Event Grid function named '{name}'")
        try:
            events = _events(json.loads(await request.body()))
        except ValueError as exc:
            return problem(400, "Bad Request", f"not an Event Grid or CloudEvents body: {exc}")
        validation = _validation_code(request, events)
        if validation is not None:
            return JSONResponse({"validationResponse": validation})
        return await self._invoke_each(target, events)

    async def _invoke_each(self, target: FunctionTarget, events: list[dict[str, Any]]) -> Response:
        for event in events:
            value = EventGridEventInConverter.decode(
                meta.Datum(type="json", value=json.dumps(event)), trigger_metadata=None)
            try:
                await invoke(target, value, self._client_json)
            except Exception:  # noqa: BLE001 - the host answers 500 so Event Grid retries
                log.exception("function %s raised on event %s", target.name, event.get("id"))
                return problem(500, "Internal Server Error",
                               f"function {target.name} raised on event {event.get('id')}")
        return Response(status_code=200)


def _events(body: Any) -> list[dict[str, Any]]:
    """Normalise a delivery to a list of event objects. ValueError if it is not one."""
    events = body if isinstance(body, list) else [body]
    if not events or not all(isinstance(e, dict) for e in events):
        raise ValueError("expected an event object or a non-empty array of them")
    for event in events:
        if "specversion" not in event and "eventType" not in event:
            raise ValueError(f"event {event.get('id')!r} has neither eventType nor specversion")
    return events


def _validation_code(request: Request, events: list[dict[str, Any]]) -> str | None:
    is_validation = request.headers.get("aeg-event-type") == "SubscriptionValidation"
    for event in events:
        if is_validation or event.get("eventType") == _VALIDATION_EVENT:
            data = event.get("data") or {}
            return str(data.get("validationCode", ""))
    return None
