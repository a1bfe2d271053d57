"""A fake Azure Resource Manager behind an azure-core transport, for the real SDK clients.

`FakeArm` is an `azure.core.pipeline.transport.HttpTransport`: the management clients
build and sign real requests, run them through their real pipelines (retry, polling,
deserialisation), and this transport answers with canned ARM JSON. It keeps resources
by path, answers PUTs of registries and clusters as long-running operations
(`Azure-AsyncOperation`, one `InProgress` poll, then `Succeeded`), can throttle the next
requests with 429 + `Retry-After`, and can fail every request of a method whose path
contains a marker (`broken`) to inject a failed provision step. `writes` counts PUTs per path.
"""

from __future__ import annotations

import base64
import collections
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import CaseInsensitiveDict

ARM = "https://management.azure.com"
LRO_KINDS = ("/registries/", "/managedclusters/")
ARM_TOP_LEVEL = {"location", "tags", "identity", "sku", "properties", "kind", "zones"}
# pollers wait Retry-After between polls; 0 means "use the default" (30 s), so ask for 10 ms
POLL_SOON = {"retry-after-ms": "10"}


class FakeCredential:
    """A TokenCredential that hands out a fixed bearer token; counts requests for one."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken("fake-arm-token", int(time.time()) + 3600)


class _Closed:
    def close(self) -> None:
        pass


def sku(name: str, family: str, vcpus: int, locations: list[str], restricted: bool = False) -> dict:
    """A compute ResourceSku as ARM lists it."""
    restrictions = [{"type": "Location", "values": locations, "reasonCode": "NotAvailableForSubscription"}]
    return {"resourceType": "virtualMachines", "name": name, "family": family, "locations": locations,
            "capabilities": [{"name": "vCPUs", "value": str(vcpus)}],
            "restrictions": restrictions if restricted else []}


def usage(name: str, current: int, limit: int) -> dict:
    """A compute Usage (vCPU quota) as ARM lists it."""
    return {"name": {"value": name, "localizedValue": name}, "currentValue": current, "limit": limit,
            "unit": "Count"}


class FakeArm(HttpTransport):
    """The fake ARM; see the module docstring. `kubeconfig` is what cluster credentials return."""

    def __init__(self, skus: list[dict], usages: list[dict], kubeconfig: str = "") -> None:
        self.skus, self.usages, self.kubeconfig = list(skus), list(usages), kubeconfig
        self.resources: dict[str, dict] = {}
        self.writes: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[str, str]] = []
        self.broken: set[tuple[str, str]] = set()  # (method, path fragment) answered 400
        self.throttle = 0  # answer this many next requests with 429
        self._operations: dict[str, list[str]] = {}

    # HttpTransport
    def __enter__(self) -> FakeArm:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: Any, **kwargs: Any) -> HttpResponseImpl:
        path = urlsplit(request.url).path.lower().rstrip("/")
        self.requests.append((request.method, path))
        assert request.headers.get("Authorization") == "Bearer fake-arm-token", "unsigned ARM request"
        if self.throttle:
            self.throttle -= 1
            return self._answer(request, 429, {"error": {"code": "TooManyRequests", "message": "throttled"}},
                                {"Retry-After": "1"})
        marker = next((m for verb, m in self.broken if verb == request.method and m in path), None)
        if marker:
            return self._answer(request, 400, {"error": {"code": "InjectedFailure",
                                                         "message": f"injected failure at {marker}"}})
        status, body, headers = self._route(request, path)
        return self._answer(request, status, body, headers)

    # ARM behaviour
    def _route(self, request: Any, path: str) -> tuple[int, Any, dict[str, str]]:
        method = request.method
        if path.startswith("/fake-operations/"):
            states = self._operations[path]
            status = states.pop(0) if len(states) > 1 else states[0]
            return 200, {"status": status}, POLL_SOON
        if path.endswith("/providers/microsoft.compute/skus"):
            return 200, {"value": self.skus}, {}
        if re.search(r"/providers/microsoft.compute/locations/[^/]+/usages$", path):
            return 200, {"value": self.usages}, {}
        if path.endswith("/listclusterusercredential"):
            value = base64.b64encode(self.kubeconfig.encode()).decode()
            return 200, {"kubeconfigs": [{"name": "clusterUser", "value": value}]}, {}
        if method == "GET":
            found = self.resources.get(path)
            if found is None:
                return 404, {"error": {"code": "ResourceNotFound", "message": f"{path} not found"}}, {}
            return 200, found, {}
        if method == "PUT":
            # new-style requests carry `content`, legacy ones (authorization client) `body`
            raw = getattr(request, "content", None) or getattr(request, "body", None) or b"{}"
            return self._put(path, json.loads(raw))
        return 405, {"error": {"code": "MethodNotAllowed", "message": method}}, {}

    def _put(self, path: str, body: dict) -> tuple[int, Any, dict[str, str]]:
        unknown = set(body) - ARM_TOP_LEVEL
        if unknown:  # e.g. snake_case keys of a dict body the SDK sent verbatim
            return 400, {"error": {"code": "InvalidRequestContent",
                                   "message": f"unknown top-level properties {sorted(unknown)}"}}, {}
        self.writes[path] += 1
        name = path.rsplit("/", 1)[-1]
        resource = {**body, "id": path, "name": name}
        props = resource.setdefault("properties", {})
        if "/managedclusters/" in path:
            props["identityProfile"] = {"kubeletidentity": {"objectId": "kubelet-object-id",
                                                           "clientId": "kubelet-client-id"}}
            props["oidcIssuerProfile"] = {**props.get("oidcIssuerProfile", {}),
                                          "issuerURL": f"https://oidc.example/{name}/"}
        if not any(kind in path for kind in LRO_KINDS):
            props["provisioningState"] = "Succeeded"
            self.resources[path] = resource
            return 201, resource, {}
        props["provisioningState"] = "Creating"
        self.resources[path] = resource
        operation = f"/fake-operations/{len(self._operations) + 1}"
        self._operations[operation] = ["InProgress", "Succeeded"]
        # the resource is Succeeded once the operation is; the final GET then reads it
        self.resources[path] = {**resource, "properties": {**props, "provisioningState": "Succeeded"}}
        return 201, resource, {"Azure-AsyncOperation": f"{ARM}{operation}", **POLL_SOON}

    def _answer(self, request: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponseImpl:
        response = HttpResponseImpl(
            request=request, internal_response=_Closed(), status_code=status, reason=str(status),
            content_type="application/json",
            headers=CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})}),
            stream_download_generator=None)
        response._content = json.dumps(body).encode()
        response._is_stream_consumed = True
        return response
