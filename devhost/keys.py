"""The host key on devhost's runtime routes, as the Functions host requires it (NFR-SEC-004).

The Functions host protects its own endpoints (``/admin/...``, the extension webhooks
under ``/runtime/webhooks/...``) with its master or a system key, passed as the
``x-functions-key`` header or the ``code`` query parameter
(https://learn.microsoft.com/azure/azure-functions/function-keys-how-to,
https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-http-api).
devhost has one key for all of them (the master key's role; ``shared.keyfiles.host_key``)
and guards every path under :data:`PROTECTED_PREFIXES`: the local queues, the durable
management API, the Event Grid webhook and the admin routes. HTTP-triggered functions
under ``/api`` authenticate their callers themselves (bearer tokens).

A third form exists for the Durable SDK's own client: ``azure-functions-durable`` 1.x
sends its management calls to the binding's ``rpcBaseUrl`` and appends nothing to them
(in Azure that URL is the extension's loopback-only listener, which takes no key).
devhost puts the key in that URL's userinfo (``http://functions:<key>@host/...``), which
aiohttp turns into ``Authorization: Basic``; so Basic credentials whose password is the
key are accepted too, and the SDK client works unchanged.
"""

from __future__ import annotations

import base64
import binascii
import logging
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from devhost.problems import problem
from shared.keyfiles import matches

log = logging.getLogger("devhost.keys")

PROTECTED_PREFIXES = ("/runtime/", "/admin/")
KEY_HEADER = b"x-functions-key"
BASIC_USER = "functions"


def presented_keys(scope: Scope) -> list[str]:
    """Every host-key candidate a request carries: header, ``code`` query, Basic password."""
    keys: list[str] = []
    for name, value in scope.get("headers", []):
        if name == KEY_HEADER:
            keys.append(value.decode("latin-1"))
        elif name == b"authorization":
            scheme, _, encoded = value.decode("latin-1").partition(" ")
            if scheme.lower() == "basic":
                try:
                    keys.append(base64.b64decode(encoded.strip(), validate=True)
                                .decode("utf-8").partition(":")[2])
                except (binascii.Error, UnicodeDecodeError):
                    pass
    keys.extend(parse_qs(scope.get("query_string", b"").decode("latin-1")).get("code", []))
    return keys


class HostKeyMiddleware:
    """ASGI middleware: requests under :data:`PROTECTED_PREFIXES` need the host key.

    Answers 401 problem+json (``WWW-Authenticate: Basic``, the one challenge scheme the
    host accepts besides the header and query forms) when no presented key matches;
    comparison is constant-time. Other paths pass untouched.
    """

    def __init__(self, app: ASGIApp, key: str) -> None:
        if not key:
            raise ValueError("the host key must not be empty")
        self.app = app
        self._key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if any(matches(key, self._key) for key in presented_keys(scope)):
            await self.app(scope, receive, send)
            return
        log.info("401 for %s %s: no valid host key", scope["method"], scope["path"])
        response = problem(401, "Unauthorized",
                           "this runtime route needs the host key (x-functions-key header or code "
                           "query parameter)")
        response.headers["WWW-Authenticate"] = 'Basic realm="devhost"'
        await response(scope, receive, send)
