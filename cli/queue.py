"""`mcpaas deploy --queue`: put a deploy request on the `deploy-requests` queue.

The message is what `triggers.service_bus` consumes:
`{"spec": ServerSpec, "requested_by": str, "idempotency_key": str}`; the idempotency key
doubles as the Service Bus message id, so a resend of the same request is ignored.

Where it goes: to Azure Service Bus when `MCPAAS_SERVICEBUS_NAMESPACE` names a namespace
(sent with `azure-servicebus` and `DefaultAzureCredential`: the caller needs the
"Azure Service Bus Data Sender" role), otherwise to devhost's local queue
(`POST {api_url}/runtime/queues/deploy-requests/messages`, see `devhost.queues`).
"""

from __future__ import annotations

import getpass
import json
import uuid
from typing import Any

import httpx

from cli.api import problem_error
from cli.errors import CliError, UnreachableError

DEPLOY_QUEUE = "deploy-requests"  # triggers.service_bus.DEPLOY_QUEUE; the CLI does not import the app


def deploy_request(spec: dict[str, Any], requested_by: str | None = None,
                   idempotency_key: str | None = None) -> dict[str, Any]:
    """The message body for `spec` (a ServerSpec as JSON)."""
    return {"spec": spec, "requested_by": requested_by or getpass.getuser(),
            "idempotency_key": idempotency_key or uuid.uuid4().hex}


def enqueue_deploy(request: dict[str, Any], *, api_url: str, namespace: str | None = None,
                   transport: httpx.BaseTransport | None = None) -> str:
    """Send `request` (from `deploy_request`); returns the message id.

    Raises UnreachableError when devhost does not answer, ApiError for its 4xx/5xx, and
    CliError when Service Bus refuses the message.
    """
    if namespace:
        return _send_to_service_bus(request, namespace)
    url = f"{api_url.rstrip('/')}/runtime/queues/{DEPLOY_QUEUE}/messages"
    headers = {"Content-Type": "application/json",
               "BrokerProperties": json.dumps({"MessageId": request["idempotency_key"]})}
    try:
        with httpx.Client(transport=transport, timeout=10.0) as client:
            response = client.post(url, content=json.dumps(request), headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise UnreachableError(api_url) from exc
    if response.is_error:
        raise problem_error(response)
    return str(response.json().get("message_id") or request["idempotency_key"])


def _send_to_service_bus(request: dict[str, Any], namespace: str) -> str:
    # Imported here: only Azure users pay for the SDK's import time.
    from azure.identity import DefaultAzureCredential
    from azure.servicebus import ServiceBusClient, ServiceBusMessage
    from azure.servicebus.exceptions import ServiceBusError

    message = ServiceBusMessage(json.dumps(request), message_id=request["idempotency_key"],
                                content_type="application/json")
    try:
        with ServiceBusClient(namespace, credential=DefaultAzureCredential()) as client:
            with client.get_queue_sender(DEPLOY_QUEUE) as sender:
                sender.send_messages(message)
    except ServiceBusError as exc:
        raise CliError(f"Service Bus {namespace} refused the deploy request: {exc}") from exc
    return request["idempotency_key"]
