"""Authentication of MCP requests at the gateway and its OAuth protected resource metadata.

MCP authorization (https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization):
the gateway is an OAuth 2.1 resource server. Every MCP request carries a bearer token
(Entra ID or the local issuer) or an API key (`Authorization: Bearer mcpk_...` or
`X-API-Key`); without a valid one it answers 401 with
`WWW-Authenticate: Bearer resource_metadata="<gateway>/.well-known/oauth-protected-resource/servers/{name}/mcp"`
(RFC 6750 section 3, RFC 9728 section 5.1), where clients discover the authorization
server (RFC 9728 section 3). Credentials are never logged and never forwarded to a
server (`gateway.upstreams.proxy` allowlists headers; stdio children get no request headers).
"""

from __future__ import annotations

import logging

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.asgi import header
from shared.auth.api_keys import PREFIX
from shared.auth.authenticator import Authenticator
from shared.auth.principal import AuthMode, Principal
from shared.auth.tokens import AuthenticationError
from shared.settings import Settings

from gateway.wire.http import rpc_error
from gateway.wire.jsonrpc import INVALID_REQUEST

log = logging.getLogger(__name__)

METADATA_PREFIX = "/.well-known/oauth-protected-resource"
API_KEY_HEADER = "x-api-key"


def base_url(settings: Settings, request: Request) -> str:
    """The gateway's public base URL: `MCPAAS_GATEWAY_URL` when set (behind a proxy or
    ingress), else the URL this request reached."""
    if settings.gateway_url_override:
        return settings.gateway_url_override.rstrip("/")
    return str(request.base_url).rstrip("/")


def resource_path(name: str) -> str:
    """Path of the protected resource (the server's MCP endpoint)."""
    return f"/servers/{name}/mcp"


def authorization_servers(settings: Settings) -> list[str]:
    """Issuer identifiers clients get tokens from: Entra's issuers
    (``https://login.microsoftonline.com/{tenant}/v2.0``) or the control plane (local)."""
    if settings.auth_mode is AuthMode.ENTRA:
        return list(settings.entra_issuers)
    if settings.auth_mode is AuthMode.LOCAL:
        return [settings.api_url]
    return []


def metadata_document(settings: Settings, request: Request, name: str) -> dict[str, object]:
    """RFC 9728 section 2 protected resource metadata of server `name`."""
    document: dict[str, object] = {
        "resource": base_url(settings, request) + resource_path(name),
        "authorization_servers": authorization_servers(settings),
        "bearer_methods_supported": ["header"],
        "resource_name": f"MCPaaS server {name}",
    }
    if settings.auth_scopes_supported:
        document["scopes_supported"] = list(settings.auth_scopes_supported)
    return document


class GatewayAuth:
    """Turns a request's credentials into a `Principal`, or the 401 to answer.

    Args:
        settings: the process settings (auth mode, public URL).
        authenticator: validates tokens and API keys (`shared.auth.factory`).
    """

    def __init__(self, settings: Settings, authenticator: Authenticator) -> None:
        self.settings = settings
        self.authenticator = authenticator
        # Local tokens verify in microseconds on the loop; Entra's JWKS refresh (network)
        # and API keys (a store read) run in a worker thread so they never block it.
        self._inline_tokens = settings.auth_mode is not AuthMode.ENTRA

    async def authenticate(self, request: Request, name: str) -> Principal | Response:
        """The caller, or a 401 response with the `WWW-Authenticate` challenge."""
        authorization = header(request, "authorization")
        api_key = header(request, API_KEY_HEADER)
        # a credential verified before answers from the cache, on the loop, without I/O
        if (principal := self.authenticator.cached(authorization, api_key)) is not None:
            return principal
        try:
            if api_key or not self._inline_tokens or _is_api_key(authorization):
                return await anyio.to_thread.run_sync(
                    self.authenticator.authenticate, authorization, api_key)
            return self.authenticator.authenticate(authorization, api_key)
        except AuthenticationError as exc:
            # The reason names the defect (expired, wrong audience...), never the credential.
            log.info("unauthenticated request to %s: %s", name, exc.detail)
            return self.unauthorized(request, name, presented=bool(authorization or api_key))

    def unauthorized(self, request: Request, name: str, presented: bool) -> Response:
        """401 with the RFC 9728 challenge; `invalid_token` when a credential was sent."""
        metadata = f"{base_url(self.settings, request)}{METADATA_PREFIX}{resource_path(name)}"
        challenge = f'Bearer resource_metadata="{metadata}"'
        if presented:
            challenge += ', error="invalid_token"'
        return rpc_error(401, INVALID_REQUEST, "Unauthorized: a valid bearer token or API key is required",
                         headers={"www-authenticate": challenge})


def _is_api_key(authorization: str | None) -> bool:
    return bool(authorization and authorization.partition(" ")[2].strip().startswith(PREFIX))


def metadata_response(settings: Settings, request: Request, name: str) -> Response:
    """`GET /.well-known/oauth-protected-resource/servers/{name}/mcp` (public, cacheable)."""
    return JSONResponse(metadata_document(settings, request, name),
                        headers={"cache-control": "public, max-age=300"})
