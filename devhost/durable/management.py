"""The Durable Functions HTTP management API subset used by ``DurableOrchestrationClient``.

Paths, status codes and payloads follow the extension's HTTP API
(https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-http-api)
and what ``azure/durable_functions/models/DurableOrchestrationClient.py`` reads:

* ``POST orchestrators/{functionName}[/{instanceId}]`` → 202 + management payload;
  400 ``{"ExceptionMessage"}`` for an unknown orchestrator; 409 for a live instance id.
* ``GET instances/{id}`` → 200 (finished) / 202 (pending, running) status JSON; 404.
* ``GET instances/`` → list of status JSON.
* ``POST instances/{id}/raiseEvent/{eventName}`` → 202; 404; 410 when finished.
* ``POST instances/{id}/terminate?reason=`` → 202; 404; 410 when finished.

The SDK posts payloads with aiohttp's ``json=`` after already serialising them, so a
body is usually a JSON *string* holding the JSON text of the value; see
:func:`payload_json`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devhost.durable.engine import DurableEngine, UnknownOrchestrator
from devhost.durable.history import Instance, InstanceExists
from devhost.keys import BASIC_USER
from devhost.problems import too_large
from shared.asgi import read_limited_body
from shared.errors import PayloadTooLargeError

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
INSTANCE_PLACEHOLDER = "INSTANCEID"


def client_binding(api_url: str, task_hub: str, host_key: str) -> dict[str, Any]:
    """The ``durableClient`` binding payload (``DurableOrchestrationBindings`` keys).

    ``rpcBaseUrl`` is where the SDK client sends management calls, with `host_key` in
    its userinfo (the SDK appends nothing to these calls; see ``devhost.keys``); the
    ``*Urls`` templates feed ``create_check_status_response`` /
    ``create_http_management_payload`` and carry ``code=<host_key>`` like Azure's
    (``requiredQueryStringParameters``). So a function that hands those URLs to a
    caller hands out the host key, as in Azure: only return them to trusted callers.
    """
    root = api_url.rstrip("/")
    base = f"{root}{WEBHOOK_PATH}"
    quoted = quote(host_key, safe="")
    query = f"taskHub={task_hub}&connection=Storage&code={quoted}"
    scheme, _, authority = root.partition("://")
    rpc_base = f"{scheme}://{BASIC_USER}:{quoted}@{authority}{WEBHOOK_PATH}/"
    inst = f"{base}/instances/{INSTANCE_PLACEHOLDER}"
    return {
        "taskHubName": task_hub,
        "creationUrls": {
            "createNewInstancePostUri":
                f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]?{query}",
            "createAndWaitOnNewInstancePostUri":
                f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
                f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}",
        },
        "managementUrls": {
            "id": INSTANCE_PLACEHOLDER,
            "statusQueryGetUri": f"{inst}?{query}",
            "sendEventPostUri": f"{inst}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{inst}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{inst}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{inst}?{query}",
            "restartPostUri": f"{inst}/restart?{query}",
            "suspendPostUri": f"{inst}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{inst}/resume?reason={{text}}&{query}",
        },
        "baseUrl": base,
        "requiredQueryStringParameters": query,
        "rpcBaseUrl": rpc_base,
    }


def management_payload(binding: dict[str, Any], instance_id: str) -> dict[str, str]:
    """The HttpManagementPayload for one instance (same shape as Azure's)."""
    urls = binding["managementUrls"]
    return {key: value.replace(INSTANCE_PLACEHOLDER, instance_id) for key, value in urls.items()}


def payload_json(body: bytes) -> str | None:
    """Turn a request body into the JSON text of the value it carries (None if empty).

    The SDK double-encodes (``json=df_dumps(value)``), so a JSON string token that is
    itself valid JSON is taken as that JSON text; any other token is re-serialised.

    Raises:
        ValueError: the body is not JSON.
    """
    if not body.strip():
        return None
    token = json.loads(body)
    if token is None:
        return None
    if isinstance(token, str):
        try:
            json.loads(token)
            return token
        except ValueError:
            pass
    return json.dumps(token)


def status_json(inst: Instance, history: list[dict[str, Any]] | None,
                show_input: bool) -> dict[str, Any]:
    """The status object ``DurableOrchestrationStatus.from_json`` reads."""
    body: dict[str, Any] = {
        "name": inst.name, "instanceId": inst.instance_id, "runtimeStatus": inst.status,
        "input": inst.input if show_input else None,
        "customStatus": json.loads(inst.custom_status) if inst.custom_status else None,
        "output": json.loads(inst.output) if inst.output else None,
        "createdTime": _seconds(inst.created_time),
        "lastUpdatedTime": _seconds(inst.updated_time),
    }
    if history is not None:
        # Azure names it historyEvents; the Python SDK's status object reads `history`.
        body["historyEvents"] = body["history"] = history
    return body


def _seconds(stamp: str) -> str:
    return stamp.split(".")[0] + "Z" if "." in stamp else stamp


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    return default if value is None else value.lower() in ("true", "1")


class ManagementApi:
    """Starlette routes of the management API for one engine.

    Args:
        engine: the durable engine.
        binding: from :func:`client_binding` (for the management payload URLs).
        max_body_bytes: larger bodies get 413.
    """

    def __init__(self, engine: DurableEngine, binding: dict[str, Any],
                 max_body_bytes: int) -> None:
        self._engine = engine
        self._binding = binding
        self._limit = max_body_bytes

    def routes(self) -> list[Route]:
        """The routes, mounted at the site root."""
        p = WEBHOOK_PATH
        return [
            Route(p + "/orchestrators/{name}", self.start_new, methods=["POST"]),
            Route(p + "/orchestrators/{name}/{instance_id}", self.start_new, methods=["POST"]),
            Route(p + "/instances/", self.list_instances, methods=["GET"]),
            Route(p + "/instances/{instance_id}", self.get_status, methods=["GET"]),
            Route(p + "/instances/{instance_id}/raiseEvent/{event}", self.raise_event,
                  methods=["POST"]),
            Route(p + "/instances/{instance_id}/terminate", self.terminate, methods=["POST"]),
        ]

    async def _payload(self, request: Request) -> str | None:
        return payload_json(await read_limited_body(request, self._limit))

    async def start_new(self, request: Request) -> Response:
        """Start an orchestration (202), see module docstring for errors."""
        name = request.path_params["name"]
        instance_id = request.path_params.get("instance_id") or uuid.uuid4().hex
        try:
            input_json = await self._payload(request)
            # the SDK client sends the caller's W3C context; activities continue that trace
            self._engine.start(name, instance_id, input_json, request.headers.get("traceparent"))
        except PayloadTooLargeError as exc:
            return too_large(exc)
        except ValueError:
            return JSONResponse({"ExceptionMessage": "request body is not JSON"}, 400)
        except UnknownOrchestrator:
            return JSONResponse(
                {"ExceptionMessage": f"The function '{name}' doesn't exist, is disabled, "
                                     "or is not an orchestrator function."}, 400)
        except InstanceExists:
            return JSONResponse(f"An orchestration with instance id '{instance_id}' "
                                "already exists and is not in a terminal state.", 409)
        payload = management_payload(self._binding, instance_id)
        return JSONResponse({"id": instance_id, **payload}, 202,
                            headers={"Location": payload["statusQueryGetUri"]})

    async def get_status(self, request: Request) -> Response:
        """Status of one instance: 202 while Pending/Running, 200 when finished."""
        instance_id = request.path_params["instance_id"]
        inst = self._engine.store.get_instance(instance_id)
        if inst is None:
            return JSONResponse(f"No instance with ID '{instance_id}' found.", 404)
        history = (self._engine.store.history(instance_id)
                   if _flag(request, "showHistory", False) else None)
        body = status_json(inst, history, _flag(request, "showInput", True))
        if inst.status == "Failed" and _flag(request, "returnInternalServerErrorOnFailure",
                                             False):
            return JSONResponse(body, 500)
        if inst.terminal:
            return JSONResponse(body, 200)
        location = management_payload(self._binding, instance_id)["statusQueryGetUri"]
        return JSONResponse(body, 202, headers={"Location": location, "Retry-After": "1"})

    async def list_instances(self, request: Request) -> Response:
        """Status of every instance (no paging)."""
        show_input = _flag(request, "showInput", False)
        return JSONResponse([status_json(i, None, show_input)
                             for i in self._engine.store.list_instances()])

    async def raise_event(self, request: Request) -> Response:
        """Queue an external event for a live instance."""
        try:
            input_json = await self._payload(request)
        except PayloadTooLargeError as exc:
            return too_large(exc)
        except ValueError:
            return JSONResponse("Only application/json request content is supported", 400)
        result = self._engine.raise_event(request.path_params["instance_id"],
                                          request.path_params["event"], input_json)
        return self._accepted(result, request.path_params["instance_id"])

    async def terminate(self, request: Request) -> Response:
        """Terminate a live instance; the reason becomes its output."""
        result = self._engine.terminate(request.path_params["instance_id"],
                                        request.query_params.get("reason"))
        return self._accepted(result, request.path_params["instance_id"])

    @staticmethod
    def _accepted(result: str, instance_id: str) -> Response:
        if result == "missing":
            return JSONResponse(f"No instance with ID '{instance_id}' found.", 404)
        if result == "gone":
            return JSONResponse(f"Instance '{instance_id}' is completed or failed.", 410)
        return Response(status_code=202)
