"""`mcpaas deploy --queue`: put a deploy request on the `deploy-requests` queue.

The message is what `triggers.service_bus` consumes: the body
`{"spec": ServerSpec, "idempotency_key": str}` and the CLI's saved credential (the token
or API key every other command sends) as the application property `Authorization:
Bearer <credential>`; the control plane authenticates and authorizes it like
`POST /api/servers`, and the sender is whoever the credential names. The idempotency key
doubles as the Service Bus message id, so a resend of the same request is ignored.

Where it goes: to Azure Service Bus when `MCPAAS_SERVICEBUS_NAMESPACE` names a namespace
(sent with `azure-servicebus` and `DefaultAzureCredential`: the caller needs the
"Azure Service Bus Data Sender" role), otherwise to devhost's local queue
(`POST {api_url}/runtime/queues/deploy-requests/messages`, see `devhost.queues`) with
devhost's host key (`x-functions-key`; `MCPAAS_HOST_KEY` or the data dir's key file).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from cli.api import problem_error
from cli.errors import CliError, UnreachableError

DEPLOY_QUEUE = "deploy-requests"  # triggers.service_bus.DEPLOY_QUEUE; the CLI does not import the app
CREDENTIAL_PROPERTY = "Authorization"  # triggers.service_bus.CREDENTIAL_PROPERTY


def deploy_request(spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
    """The message body for `spec` (a ServerSpec as JSON)."""
    return {"spec": spec, "idempotency_key": idempotency_key or uuid.uuid4().hex}


def enqueue_deploy(request: dict[str, Any], *, credential: str | None, api_url: str,
                   namespace: str | None = None, host_key: str | None = None,
                   transport: httpx.BaseTransport | None = None) -> str:
    """Send `request` (from `deploy_request`) on behalf of `credential` (a bearer token
    or API key); returns the message id. `host_key` authorizes the local queue endpoint.

    Raises CliError without a credential (the message would only be dead-lettered),
    UnreachableError when devhost does not answer, ApiError for its 4xx/5xx, and
    CliError when Service Bus refuses the message.
    """
    if not credential:
        raise CliError("a queued deploy request carries your credential: run `mcpaas login` "
                       "or pass --token / MCPAAS_TOKEN")
    properties = {CREDENTIAL_PROPERTY: f"Bearer {credential}"}
    if namespace:
        return _send_to_service_bus(request, namespace, properties)
    url = f"{api_url.rstrip('/')}/runtime/queues/{DEPLOY_QUEUE}/messages"
    headers = {"Content-Type": "application/json",
               "BrokerProperties": json.dumps({"MessageId": request["idempotency_key"]}),
               "Application-Properties": json.dumps(properties)}
    if host_key:
        headers["x-functions-key"] = host_key
    try:
        with httpx.Client(transport=transport, timeout=10.0) as client:
            response = client.post(url, content=json.dumps(request), headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise UnreachableError(api_url) from exc
    if response.is_error:
        raise problem_error(response)
    return str(response.json().get("message_id") or request["idempotency_key"])


def _send_to_service_bus(request: dict[str, Any], namespace: str, properties: dict[str, str]) -> str:
    # Imported here: only Azure users pay for the SDK's import time.
    from azure.identity import DefaultAzureCredential
    from azure.servicebus import ServiceBusClient, ServiceBusMessage
    from azure.servicebus.exceptions import ServiceBusError

    # a comprehension in place, not `properties`: dict is invariant and the SDK's key and value
    # types are wider unions, which the comprehension takes from the parameter's type
    message = ServiceBusMessage(json.dumps(request), message_id=request["idempotency_key"],
                                content_type="application/json",
                                application_properties={key: value for key, value in properties.items()})
    try:
        with ServiceBusClient(namespace, credential=DefaultAzureCredential()) as client:
            with client.get_queue_sender(DEPLOY_QUEUE) as sender:
                sender.send_messages(message)
    except ServiceBusError as exc:
        raise CliError(f"Service Bus {namespace} refused the deploy request: {exc}") from exc
    return request["idempotency_key"]
