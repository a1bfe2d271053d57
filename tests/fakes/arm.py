"""A fake Azure Resource Manager behind an azure-core transport, for the real SDK clients.

`FakeArm` is a `tests.fakes.transport.FakeTransport`: the management clients
build and sign real requests, run them through their real pipelines (retry, polling,
deserialisation), and this transport answers with canned ARM JSON. It keeps resources
by path, answers PUTs of registries and clusters as long-running operations
(`Azure-AsyncOperation`, one `InProgress` poll, then `Succeeded`), can throttle the next
requests with 429 + `Retry-After`, and can fail every request of a method whose path
contains a marker (`broken`) to inject a failed provision step. `writes` counts PUTs per path.
Like ARM, it refuses a role assignment that repeats another one's role, principal and
scope under a new name (409 `RoleAssignmentExists`).
"""

from __future__ import annotations

import base64
import collections
import re
import time
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from azure.core.rest._http_response_impl import HttpResponseImpl

from tests.fakes.transport import OPERATIONS, Answer, FakeTransport, error, request_json

LRO_KINDS = ("/registries/", "/managedclusters/")
ROLE_ASSIGNMENTS = "/providers/microsoft.authorization/roleassignments/"
ARM_TOP_LEVEL = {"location", "tags", "identity", "sku", "properties", "kind", "zones"}


class FakeCredential:
    """A TokenCredential that hands out a fixed bearer token; counts requests for one."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken("fake-arm-token", int(time.time()) + 3600)


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


class FakeArm(FakeTransport):
    """The fake ARM; see the module docstring. `kubeconfig` is what cluster credentials return."""

    def __init__(self, skus: list[dict], usages: list[dict], kubeconfig: str = "") -> None:
        super().__init__()
        self.skus, self.usages, self.kubeconfig = list(skus), list(usages), kubeconfig
        self.resources: dict[str, dict] = {}
        self.writes: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[str, str]] = []
        self.broken: set[tuple[str, str]] = set()  # (method, path fragment) answered 400

    def send(self, request: Any, **kwargs: Any) -> HttpResponseImpl:
        path = urlsplit(request.url).path.lower().rstrip("/")
        self.requests.append((request.method, path))
        assert request.headers.get("Authorization") == "Bearer fake-arm-token", "unsigned ARM request"
        throttled = self.throttling(request)
        if throttled:
            return throttled
        marker = next((m for verb, m in self.broken if verb == request.method and m in path), None)
        if marker:
            return self.answer(request, *error(400, "InjectedFailure", f"injected failure at {marker}"))
        return self.answer(request, *self._route(request, path))

    # ARM behaviour
    def _route(self, request: Any, path: str) -> Answer:
        method = request.method
        if path.startswith(OPERATIONS):
            return self.poll(path)
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
                return error(404, "ResourceNotFound", f"{path} not found")
            return 200, found, {}
        if method == "PUT":
            return self._put(path, request_json(request))
        return error(405, "MethodNotAllowed", method)

    def _put(self, path: str, body: dict) -> Answer:
        unknown = set(body) - ARM_TOP_LEVEL
        if unknown:  # e.g. snake_case keys of a dict body the SDK sent verbatim
            return error(400, "InvalidRequestContent", f"unknown top-level properties {sorted(unknown)}")
        if ROLE_ASSIGNMENTS in path and self._same_grant(path, body):
            return error(409, "RoleAssignmentExists", "The role assignment already exists.")
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
        # the resource is Succeeded once the operation is; the final GET then reads it
        self.resources[path] = {**resource, "properties": {**props, "provisioningState": "Succeeded"}}
        return 201, resource, self.start_operation()

    def _same_grant(self, path: str, body: dict) -> bool:
        """Whether another assignment at `path`'s scope grants the same role to the same principal."""
        scope = path.split(ROLE_ASSIGNMENTS)[0] + ROLE_ASSIGNMENTS

        def grant(properties: dict) -> tuple[str, str]:
            return properties.get("roleDefinitionId", "").lower(), properties.get("principalId", "")

        wanted = grant(body.get("properties", {}))
        return any(other != path and other.startswith(scope) and grant(resource.get("properties", {})) == wanted
                   for other, resource in self.resources.items())
