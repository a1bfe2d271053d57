"""Helpers of the gateway's authentication, policy, tenancy and rate-limit tests: a
gateway in `local` auth mode and tokens minted by its own issuer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp import MCPError

from shared.auth.principal import AuthMode, Role
from shared.auth.tokens import LocalIssuer
from shared.models import AccessPolicy

from tests.e2e.helpers import mcp_client
from tests.integration.gateway.helpers import GatewayUnderTest, echo_spec


class AuthGateway:
    """A gateway started in `local` mode, with its issuer for minting tokens."""

    def __init__(self, gateway: GatewayUnderTest) -> None:
        self.gateway = gateway
        self.issuer = LocalIssuer(gateway.settings.auth_key_path)

    def token(self, user: str, *roles: Role, groups: tuple[str, ...] = (),
              scopes: dict[str, list[str]] | None = None) -> str:
        """A token of `user` (default role Reader)."""
        return self.issuer.mint(user, roles or (Role.READER,), groups=groups, scopes=scopes)

    def headers(self, user: str, *roles: Role, **claims: Any) -> dict[str, str]:
        """`Authorization` header of a fresh token of `user`."""
        return bearer(self.token(user, *roles, **claims))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_local(make_gateway: Callable[..., GatewayUnderTest], **overrides: Any) -> AuthGateway:
    """Start a gateway in `local` auth mode (settings `overrides` applied)."""
    return AuthGateway(make_gateway(auth_mode=AuthMode.LOCAL, **overrides))


async def allowed_and_denied_calls(auth: AuthGateway, trace_id: str) -> None:
    """Deploy `echo` with tool `add` for Admins only, then, as Reader ``ann`` inside W3C
    trace `trace_id` (32 hex digits), call `echo` (allowed) and `add` (denied by policy)."""
    auth.gateway.put(echo_spec().model_copy(update={"access": AccessPolicy(tools={"add": [Role.ADMIN]})}))
    traced = {**auth.headers("ann", Role.READER), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    async with mcp_client(auth.gateway.mcp_url("echo"), traced) as client:
        await client.call_tool("echo", {"message": "hi"})
        with pytest.raises(MCPError):
            await client.call_tool("add", {"a": 1, "b": 2})
