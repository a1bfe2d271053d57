"""The base of the azure-core fake transports (`tests.fakes.arm`, `apim`, `cognitive`, `keyvault`).

Each fake is an `azure.core.pipeline.transport.HttpTransport`: the real SDK clients build,
sign and send real requests through their real pipelines (retry, polling,
deserialisation), and the fake answers at the HTTP boundary with canned JSON.
`FakeTransport` holds what they share: the transport's no-op lifecycle, complete JSON
answers (`answer`), throttling with 429 + `Retry-After` (`throttle`), and ARM-style
long-running operations (`start_operation`: `Azure-AsyncOperation`, one `InProgress`
poll, then `Succeeded`). https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations
"""

from __future__ import annotations

import json
from typing import Any

from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import CaseInsensitiveDict

ARM = "https://management.azure.com"
OPERATIONS = "/fake-operations/"
# pollers wait Retry-After between polls; 0 means "use the default" (30 s), so ask for 10 ms
POLL_SOON = {"retry-after-ms": "10"}
Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (None: empty), headers


class _Closed:
    def close(self) -> None:
        pass


def request_json(request: Any) -> dict[str, Any]:
    """The JSON body of `request` (`{}` when empty): new-style requests carry `content`,
    legacy ones (the authorization client) `body`."""
    raw = getattr(request, "content", None) or getattr(request, "body", None) or b"{}"
    return json.loads(raw)


def error(status: int, code: str, message: str) -> Answer:
    """An Azure error answer: ``{"error": {"code", "message"}}``."""
    return status, {"error": {"code": code, "message": message}}, {}


class FakeTransport(HttpTransport):
    """An HttpTransport answering canned JSON; subclasses implement `send`.

    `throttle`: answer this many next requests with 429 (see `throttling`); `throttled`
    counts those answered so far.
    """

    def __init__(self) -> None:
        self.throttle = 0
        self.throttled = 0
        self._operations: dict[str, list[str]] = {}

    def __enter__(self) -> FakeTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def throttling(self, request: Any, retry_after: str = "1") -> HttpResponseImpl | None:
        """A 429 answer with `Retry-After` (seconds) while `throttle` is positive, counting
        it down; None otherwise."""
        if not self.throttle:
            return None
        self.throttle -= 1
        self.throttled += 1
        return self.answer(request, 429, {"error": {"code": "TooManyRequests", "message": "throttled"}},
                           {"Retry-After": retry_after})

    def start_operation(self) -> dict[str, str]:
        """Headers of a long-running operation's first answer; its polls (`poll`) answer
        ``InProgress`` once, then ``Succeeded``."""
        operation = f"{OPERATIONS}{len(self._operations) + 1}"
        self._operations[operation] = ["InProgress", "Succeeded"]
        return {"Azure-AsyncOperation": f"{ARM}{operation}", **POLL_SOON}

    def poll(self, path: str) -> Answer:
        """The answer to a poll of operation `path` (under `OPERATIONS`): its next state."""
        states = self._operations[path]
        return 200, {"status": states.pop(0) if len(states) > 1 else states[0]}, POLL_SOON

    @staticmethod
    def answer(request: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponseImpl:
        """A complete JSON response to `request` (empty for a None body or a HEAD request),
        readable whole or as a stream (long-running operations' first answers are streamed)."""
        content = b"" if body is None or request.method == "HEAD" else json.dumps(body).encode()
        response = HttpResponseImpl(
            request=request, internal_response=_Closed(), status_code=status, reason=str(status),
            content_type="application/json",
            headers=CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})}),
            stream_download_generator=lambda pipeline, response, **kwargs: iter([content]))
        response._content = content
        response._is_stream_consumed = True
        return response
