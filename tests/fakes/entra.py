"""A fake Microsoft Entra ID (login.microsoftonline.com) behind an azure-core transport, for
the real `azure.identity.DeviceCodeCredential` (and the MSAL it drives).

It answers what the OAuth 2.0 device authorization grant needs (RFC 8628;
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code): the tenant's
OpenID configuration, `POST /{tenant}/oauth2/v2.0/devicecode` (a user code), and
`POST /{tenant}/oauth2/v2.0/token`, which answers `authorization_pending` `pending` times
before it issues `access_token`, as while the user has not yet signed in (or, with
`error` set, that error, as when the code expired). `requests` records
`(method, path, form)` of every request.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.transport import FakeTransport

AUTHORITY = "https://login.microsoftonline.com"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class FakeEntra(FakeTransport):
    """One tenant's device-code sign-in; see the module docstring."""

    def __init__(self, tenant: str, access_token: str, user_code: str = "FAKE-CODE", pending: int = 1) -> None:
        super().__init__()
        self.tenant, self.access_token, self.user_code, self.pending = tenant, access_token, user_code, pending
        self.device_code = "device-code-1"
        self.error: str | None = None  # e.g. "expired_token": the token endpoint's answer instead of a token
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        """Answer one request of MSAL's pipeline (see the module docstring)."""
        url = urlsplit(request.url)
        raw = getattr(request, "content", None) or b""  # a form: azure-core keeps the dict as given
        form = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else dict(
            parse_qsl(raw.decode() if isinstance(raw, bytes) else str(raw)))
        self.requests.append((request.method, url.path, form))
        status, body = self._route(url.path, dict(parse_qsl(url.query)), form)
        return self.answer(request, status, body)

    def _route(self, path: str, query: dict[str, str], form: dict[str, str]) -> tuple[int, Any]:
        base = f"{AUTHORITY}/{self.tenant}"
        if path == f"/{self.tenant}/v2.0/.well-known/openid-configuration":
            return 200, {"issuer": f"{AUTHORITY}/{self.tenant}/v2.0",
                         "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                         "token_endpoint": f"{base}/oauth2/v2.0/token",
                         "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"}
        if path == f"/{self.tenant}/oauth2/v2.0/devicecode":
            return 200, {"device_code": self.device_code, "user_code": self.user_code,
                         "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 1,
                         "message": f"To sign in, use a web browser to open the page "
                                    f"https://microsoft.com/devicelogin and enter the code {self.user_code}"}
        if path == f"/{self.tenant}/oauth2/v2.0/token":
            return self._token(form)
        return 404, {"error": "not_found", "error_description": path}

    def _token(self, form: dict[str, str]) -> tuple[int, Any]:
        if form.get("grant_type") != DEVICE_GRANT or form.get("device_code") != self.device_code:
            return 400, {"error": "invalid_grant", "error_description": json.dumps(form)}
        if self.error:
            return 400, {"error": self.error, "error_description": f"AADSTS70020: {self.error}"}
        if self.pending > 0:
            self.pending -= 1
            return 400, {"error": "authorization_pending", "error_description": "the user has not signed in yet"}
        oid = "00000000-0000-0000-0000-0000000000d1"
        now = int(time.time())
        # the ID token and client_info Entra adds for the openid/profile scopes MSAL asks for;
        # MSAL reads their claims (unsigned here: it does not verify an ID token from the token endpoint)
        claims = {"iss": f"{AUTHORITY}/{self.tenant}/v2.0", "aud": form.get("client_id", ""), "oid": oid,
                  "sub": oid, "tid": self.tenant, "preferred_username": "dana@example.com", "iat": now,
                  "nbf": now, "exp": now + 3600}
        id_token = ".".join(_b64(part) for part in ({"alg": "none", "typ": "JWT"}, claims)) + "."
        return 200, {"token_type": "Bearer", "access_token": self.access_token, "expires_in": 3600,
                     "ext_expires_in": 3600, "scope": form.get("scope", ""), "id_token": id_token,
                     "refresh_token": "refresh-1", "client_info": _b64({"uid": oid, "utid": self.tenant})}


def _b64(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
