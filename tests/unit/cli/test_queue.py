"""`cli.queue`: a queued deploy request carries the sender's credential and devhost's host key."""

from __future__ import annotations

import json

import httpx
import pytest

from cli.errors import CliError
from cli.queue import deploy_request, enqueue_deploy

SPEC = {"name": "echo", "kind": "package", "package": {"command": "python"}}


def test_the_request_names_no_actor_and_the_credential_rides_as_a_property() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"message_id": "m1", "sequence_number": 1})

    body = deploy_request(SPEC, idempotency_key="k1")
    assert body == {"spec": SPEC, "idempotency_key": "k1"}  # no self-asserted requested_by
    message_id = enqueue_deploy(body, credential="tok.en.value", api_url="http://cp:7071/",
                                host_key="the-host-key", transport=httpx.MockTransport(handle))
    [request] = seen
    assert message_id == "m1"
    assert str(request.url) == "http://cp:7071/runtime/queues/deploy-requests/messages"
    assert request.headers["x-functions-key"] == "the-host-key"
    assert json.loads(request.headers["Application-Properties"]) == {"Authorization": "Bearer tok.en.value"}
    assert json.loads(request.headers["BrokerProperties"]) == {"MessageId": "k1"}
    assert json.loads(request.content) == body


def test_without_a_credential_nothing_is_sent() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    with pytest.raises(CliError, match="mcpaas login"):
        enqueue_deploy(deploy_request(SPEC), credential=None, api_url="http://cp:7071",
                       transport=httpx.MockTransport(handle))
