"""Helpers of the gateway's authentication, policy, tenancy and rate-limit tests: a
gateway in `local` auth mode and tokens minted by its own issuer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.auth.principal import AuthMode, Role
from shared.auth.tokens import LocalIssuer

from tests.integration.gateway.helpers import GatewayUnderTest


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
