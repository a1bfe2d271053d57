"""A fake Azure Key Vault (secrets) behind an azure-core transport, for the real SecretClient.

`FakeKeyVault` is a `tests.fakes.transport.FakeTransport` answering the Key
Vault secrets REST API (https://learn.microsoft.com/rest/api/keyvault/secrets/):
`PUT /secrets/{name}` (new version), `GET /secrets/{name}[/{version}]`,
`DELETE /secrets/{name}` (soft delete), `GET|DELETE /deletedsecrets/{name}` (read,
purge) and `POST /deletedsecrets/{name}/recover`. Like Key Vault it first answers an
unauthenticated request with 401 and a bearer challenge, so the SDK's challenge policy
runs for real, and it refuses to set a secret that is deleted but not purged (409).
`purge_protected` makes purges fail with 403 as in a vault with purge protection.
Secret names compare case-insensitively, as in Key Vault.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from azure.core.rest._http_response_impl import HttpResponseImpl

from tests.fakes.transport import Answer, FakeTransport, error, request_json

VAULT = "https://fake-vault.vault.azure.net"
TOKEN = "fake-kv-token"
CHALLENGE = ('Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", '
             'resource="https://vault.azure.net"')


class StaticTokenCredential:
    """A TokenCredential that hands out a fixed bearer token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, int(time.time()) + 3600)


class FakeKeyVault(FakeTransport):
    """The fake vault; see the module docstring. `secrets[name]` lists versions oldest first."""

    def __init__(self, purge_protected: bool = False) -> None:
        super().__init__()
        self.secrets: dict[str, list[dict[str, Any]]] = {}
        self.deleted: dict[str, list[dict[str, Any]]] = {}
        self.purge_protected = purge_protected
        self.requests: list[tuple[str, str]] = []

    def send(self, request: Any, **kwargs: Any) -> HttpResponseImpl:
        url = urlsplit(request.url)
        path = url.path.rstrip("/")
        self.requests.append((request.method, path))
        assert f"{url.scheme}://{url.netloc}" == VAULT, f"request to another host: {request.url}"
        assert "api-version=" in url.query, "request without api-version"
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.answer(request, 401, {"error": {"code": "Unauthorized", "message": "no token"}},
                               {"WWW-Authenticate": CHALLENGE})
        return self.answer(request, *self._route(request.method, path.split("/")[1:], request_json(request)))

    def _route(self, method: str, parts: list[str], body: dict[str, Any]) -> Answer:
        key = parts[1].lower() if len(parts) > 1 else ""
        if parts[0] == "secrets" and len(parts) in (2, 3):
            if method == "PUT" and len(parts) == 2:
                return self._set(parts[1], key, body)
            if method == "GET":
                return self._get(key, parts[2] if len(parts) == 3 else None)
            if method == "DELETE" and len(parts) == 2:
                return self._delete(key)
        if parts[0] == "deletedsecrets" and key in self.deleted:
            if method == "GET" and len(parts) == 2:
                return 200, self._deleted_bundle(key), {}
            if method == "DELETE" and len(parts) == 2:
                if self.purge_protected:
                    return error(403, "Forbidden", "purge protection is enabled")
                del self.deleted[key]
                return 204, None, {}
            if method == "POST" and parts[2:] == ["recover"]:
                self.secrets[key] = self.deleted.pop(key)
                return 200, self.secrets[key][-1], {}
        if parts[0] == "deletedsecrets":
            return error(404, "SecretNotFound", f"deleted secret {key} not found")
        return error(400, "BadParameter", f"{method} /{'/'.join(parts)} is not a secrets operation")

    def _set(self, name: str, key: str, body: dict[str, Any]) -> Answer:
        if key in self.deleted:
            return error(409, "Conflict", f"Secret {name} is currently in a deleted but recoverable state")
        if not isinstance(body.get("value"), str):
            return error(400, "BadParameter", "value is required")
        version = uuid.uuid4().hex
        now = int(time.time())
        bundle = {"value": body["value"], "id": f"{VAULT}/secrets/{name}/{version}",
                  "contentType": body.get("contentType"),
                  "attributes": {"enabled": True, "created": now, "updated": now, "recoveryLevel": "Recoverable"}}
        self.secrets.setdefault(key, []).append(bundle)
        return 200, bundle, {}

    def _get(self, key: str, version: str | None) -> Answer:
        versions = self.secrets.get(key, [])
        found = [b for b in versions if not version or b["id"].rsplit("/", 1)[1] == version]
        if not found:
            return error(404, "SecretNotFound", f"secret {key} (version {version}) not found")
        return 200, found[-1], {}

    def _delete(self, key: str) -> Answer:
        if key not in self.secrets:
            return error(404, "SecretNotFound", f"secret {key} not found")
        self.deleted[key] = self.secrets.pop(key)
        return 200, self._deleted_bundle(key), {}

    def _deleted_bundle(self, key: str) -> dict[str, Any]:
        latest = {k: v for k, v in self.deleted[key][-1].items() if k != "value"}
        return {**latest, "recoveryId": f"{VAULT}/deletedsecrets/{key}",
                "deletedDate": int(time.time()), "scheduledPurgeDate": int(time.time()) + 90 * 86400}
