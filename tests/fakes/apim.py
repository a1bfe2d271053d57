"""A fake API Management service behind an azure-core transport, for the real
`ApiManagementClient` (https://learn.microsoft.com/rest/api/apimanagement/).

`FakeApim` is a `tests.fakes.transport.FakeTransport` serving one service:
the service resource (GET, PATCH), and under it every entity by path (`apis/x`,
`apis/x/operations/y`, `.../policies/policy`, `products/p/apis/a`, `namedValues/n`,
`backends/b`, `loggers/l`, `policies/policy`): PUT, GET, HEAD, and GET of a collection.
Like APIM it answers API and named-value PUTs and service PATCHes as long-running
operations (`Azure-AsyncOperation`, one `InProgress` poll), hides secret named values'
values on GET, can throttle the next requests with 429 + `Retry-After`, and
`change_tier` simulates a tier change that drops the configuration (entities, custom
domains, virtual network) while the service is `Updating` for a few polls.

State can live in a JSON file (`state_path`), re-read at every request, so a restarted
process (or the test beside it) continues with it;
`hang` makes the first matching write block (after it is applied) until a file exists,
so a test can kill the process mid-restore. `writes` counts writes per path.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.core.rest._http_response_impl import HttpResponseImpl

from shared.apim import ServiceRef
from tests.fakes.arm import FakeCredential
from tests.fakes.transport import ARM, OPERATIONS, Answer, FakeTransport, error, request_json

SERVICE_ID = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-apim/providers/" \
             "Microsoft.ApiManagement/service/apim-mcpaas"
LRO_COLLECTIONS = ("apis", "namedvalues")
DEFAULT_HOST = {"type": "Proxy", "hostName": "apim-mcpaas.azure-api.net", "certificateSource": "BuiltIn",
                "defaultSslBinding": False, "negotiateClientCertificate": False}



class FakeApim(FakeTransport):
    """The fake service; see the module docstring. `hang`: `(path fragment, release file)`."""

    def __init__(self, service_id: str = SERVICE_ID, sku: str = "Developer", state_path: Path | None = None,
                 hang: tuple[str, Path] | None = None) -> None:
        super().__init__()
        self.ref = ServiceRef.parse(service_id)
        self.state_path, self.hang = state_path, hang
        self.leak_secrets = False  # answer secret named values with their value (worst case)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        if state_path is not None and state_path.exists():
            self.state = json.loads(state_path.read_text())
        else:
            self.state = {"service": self._service(sku), "entities": {}, "writes": {}, "updating": 0, "hung": False}

    def _service(self, sku: str) -> dict[str, Any]:
        return {"id": self.ref.id, "name": self.ref.name, "type": "Microsoft.ApiManagement/service",
                "location": "westeurope", "sku": {"name": sku, "capacity": 1},
                "properties": {"publisherEmail": "platform@example.com", "publisherName": "MCPaaS",
                               "provisioningState": "Succeeded", "gatewayUrl": f"https://{DEFAULT_HOST['hostName']}",
                               "hostnameConfigurations": [DEFAULT_HOST], "virtualNetworkType": "None",
                               "customProperties": {
                                   "Microsoft.WindowsAzure.ApiManagement.Gateway.Protocols.Server.Http2": "False"}}}

    # state
    @property
    def entities(self) -> dict[str, dict[str, Any]]:
        """Entity path (lower case, relative to the service) -> ARM resource."""
        return self.state["entities"]

    @property
    def writes(self) -> dict[str, int]:
        """Writes (PUT, PATCH) per path; `""` is the service itself."""
        return self.state["writes"]

    def _save(self) -> None:
        if self.state_path is not None:
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state))
            os.replace(tmp, self.state_path)

    def put_entity(self, path: str, properties: dict[str, Any]) -> None:
        """Create an entity directly (a service configured before the test), not counted as a write."""
        with self._lock:
            self.entities[path.lower()] = self._resource(path, properties)
            self._save()

    def change_tier(self, sku: str, updating_polls: int = 2) -> None:
        """Move to `sku`, dropping every entity, custom domain and the virtual network, and
        report `Updating` for the next `updating_polls` reads of the service."""
        with self._lock:
            service = self.state["service"]
            service["sku"] = {"name": sku, "capacity": 1}
            service["properties"].update({"hostnameConfigurations": [DEFAULT_HOST], "virtualNetworkType": "None",
                                          "provisioningState": "Updating" if updating_polls else "Succeeded"})
            service["properties"].pop("virtualNetworkConfiguration", None)
            self.state["entities"], self.state["updating"] = {}, updating_polls
            self._save()

    def send(self, request: Any, **kwargs: Any) -> HttpResponseImpl:
        url = urlsplit(request.url)
        assert f"{url.scheme}://{url.netloc}" == ARM, f"request to another host: {request.url}"
        assert request.headers.get("Authorization") == "Bearer fake-arm-token", "unsigned ARM request"
        with self._lock:
            if self.state_path is not None and self.state_path.exists():  # another process may have written it
                self.state = json.loads(self.state_path.read_text())
            self.requests.append((request.method, url.path))
            throttled = self.throttling(request)
            if throttled:
                return throttled
            answer = self._route(request, url.path.rstrip("/"))
        return self.answer(request, *answer)

    def _route(self, request: Any, path: str) -> Answer:
        if path.startswith(OPERATIONS):
            return self.poll(path)
        if not path.lower().startswith(self.ref.id):
            return error(404, "ResourceNotFound", f"{path} is not this service")
        relative = path[len(self.ref.id):].lstrip("/")
        if not relative:
            return self._service_request(request)
        segments = relative.split("/")
        if request.method == "GET" and len(segments) % 2 == 1:
            return 200, {"value": self._children(relative.lower()), "count": None}, {}
        found = self.entities.get(relative.lower())
        if request.method in ("GET", "HEAD"):
            if found is None:
                return error(404, "ResourceNotFound", f"{relative} not found")
            return 204 if request.method == "HEAD" else 200, self._shown(relative.lower(), found), {"ETag": '"1"'}
        if request.method == "PUT":
            return self._put(request, relative)
        return error(405, "MethodNotAllowed", request.method)

    def _children(self, collection: str) -> list[dict[str, Any]]:
        depth = collection.count("/") + 1
        return [self._shown(path, entity) for path, entity in sorted(self.entities.items())
                if path.startswith(f"{collection}/") and path.count("/") == depth]

    def _shown(self, path: str, entity: dict[str, Any]) -> dict[str, Any]:
        props = entity["properties"]
        if path.startswith("namedvalues/") and props.get("secret") and not self.leak_secrets:
            return {**entity, "properties": {k: v for k, v in props.items() if k != "value"}}
        return entity

    def _resource(self, path: str, properties: dict[str, Any]) -> dict[str, Any]:
        segments = path.split("/")
        kind = "/".join(segments[0::2])
        return {"id": f"{self.ref.id}/{path}", "name": segments[-1], "type": f"Microsoft.ApiManagement/service/{kind}",
                "properties": properties}

    def _record(self, key: str) -> None:
        self.writes[key] = self.writes.get(key, 0) + 1
        self._save()

    def _put(self, request: Any, relative: str) -> Answer:
        key = relative.lower()
        created = key not in self.entities
        if key.startswith("products/") and "/apis/" in key:  # a link: its body is the linked API
            api = self.entities.get(f"apis/{key.rsplit('/', 1)[1]}")
            if api is None:
                return error(404, "ResourceNotFound", "API not found")
            self.entities[key] = {**api, "id": f"{self.ref.id}/{relative}"}
        else:
            body = request_json(request)
            self.entities[key] = self._resource(relative, body.get("properties") or {})
        self._record(key)
        self._maybe_hang(key)
        shown = self._shown(key, self.entities[key])
        if key.split("/")[0] in LRO_COLLECTIONS and key.count("/") == 1:
            return 201 if created else 200, shown, self.start_operation()
        return 201 if created else 200, shown, {}

    def _service_request(self, request: Any) -> Answer:
        service = self.state["service"]
        if request.method == "GET":
            if self.state["updating"] > 0:
                self.state["updating"] -= 1
                if self.state["updating"] == 0:
                    service["properties"]["provisioningState"] = "Succeeded"
                self._save()
            return 200, service, {}
        if request.method != "PATCH":
            return error(405, "MethodNotAllowed", request.method)
        body = request_json(request)
        if "sku" in body:
            service["sku"] = body["sku"]
        service["properties"].update({k: v for k, v in (body.get("properties") or {}).items()
                                      if k not in ("provisioningState", "gatewayUrl")})
        self._record("")
        self._maybe_hang("service")
        return 200, service, self.start_operation()

    def _maybe_hang(self, key: str) -> None:
        if self.hang is None or self.state["hung"] or self.hang[0] not in key:
            return
        self.state["hung"] = True
        self._save()
        release = self.hang[1]
        release.with_suffix(".hung").touch()  # tells the test the write is applied, unanswered
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def fake_connect(fake: FakeApim):
    """A stand-in for `activities.apim.connect`: the real client over `fake`'s transport."""
    from azure.mgmt.apimanagement import ApiManagementClient

    from activities.apim import Apim

    def connect(service_id: str) -> Apim:
        ref = ServiceRef.parse(service_id)
        return Apim(ApiManagementClient(FakeCredential(), ref.subscription, transport=fake), ref)

    return connect


KV = "https://kv-mcpaas.vault.azure.net/secrets"
INLINE_SECRET = "inline-secret-value-4f2a"
LITERAL_KEY = "literal-backend-key-9c1d"


def seed(fake: FakeApim, apis: int = 3) -> None:
    """Configure the service as a team would: named values (plain, Key Vault secret, inline
    secret), a logger, backends (one with a literal key), a global policy, `apis` APIs with
    two operations and policies each, two products, a custom domain and a virtual network."""
    put = fake.put_entity
    put("namedValues/region", {"displayName": "region", "value": "westeurope", "secret": False})
    put("namedValues/backend-key", {"displayName": "backend-key", "secret": True,
                                    "keyVault": {"secretIdentifier": f"{KV}/backend-key", "identityClientId": "cid",
                                                 "lastStatus": {"code": "Success"}}})
    put("namedValues/legacy-token", {"displayName": "legacy-token", "secret": True, "value": INLINE_SECRET})
    put("loggers/appinsights", {"loggerType": "applicationInsights", "isBuffered": True,
                                "credentials": {"instrumentationKey": "{{Logger-Credentials--appinsights}}"}})
    put("backends/mcp-gateway", {"url": "https://gateway.example/servers", "protocol": "http",
                                 "credentials": {"header": {"x-backend-key": ["{{backend-key}}"]}}})
    put("backends/legacy", {"url": "https://legacy.example", "protocol": "http",
                            "credentials": {"header": {"x-api-key": [LITERAL_KEY]}}})
    put("policies/policy", {"format": "rawxml", "value": "<policies><inbound><cors/></inbound></policies>"})
    for number in range(apis):
        api = f"apis/api-{number:02d}"
        put(api, {"displayName": f"API {number}", "path": f"mcp/api-{number:02d}", "protocols": ["https"],
                  "serviceUrl": f"https://gateway.example/servers/api-{number:02d}", "subscriptionRequired": True,
                  "isCurrent": True, "apiRevision": "1"})
        put(f"{api}/policies/policy", {"format": "rawxml", "value": "<policies><inbound><set-backend-service "
                                                                    "backend-id=\"mcp-gateway\"/></inbound></policies>"})
        for method in ("get", "post"):
            put(f"{api}/operations/{method}", {"displayName": method.upper(), "method": method.upper(),
                                               "urlTemplate": "/mcp", "templateParameters": [], "responses": []})
        put(f"{api}/operations/post/policies/policy", {"format": "rawxml",
                                                       "value": "<policies><inbound><rate-limit calls=\"10\" "
                                                                "renewal-period=\"60\"/></inbound></policies>"})
    for product, linked in (("starter", range(min(apis, 2))), ("unlimited", range(apis))):
        put(f"products/{product}", {"displayName": product.title(), "subscriptionRequired": True,
                                    "approvalRequired": False, "state": "published"})
        for number in linked:
            key = f"products/{product}/apis/api-{number:02d}"
            fake.entities[key] = {**fake.entities[f"apis/api-{number:02d}"], "id": f"{fake.ref.id}/{key}"}
        put(f"products/{product}/policies/policy", {"format": "rawxml", "value": "<policies/>"})
    with fake._lock:
        props = fake.state["service"]["properties"]
        props["hostnameConfigurations"] = [DEFAULT_HOST, {
            "type": "Proxy", "hostName": "mcp.example.com", "keyVaultId": f"{KV}/mcp-tls",
            "identityClientId": "cid", "certificateSource": "KeyVault", "defaultSslBinding": True,
            "negotiateClientCertificate": False}]
        props["virtualNetworkType"] = "External"
        props["virtualNetworkConfiguration"] = {
            "subnetResourceId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/"
                                "virtualNetworks/vnet/subnets/apim", "vnetid": "abc", "subnetname": "apim"}
        fake._save()
