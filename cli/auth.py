"""Credentials for the CLI: mint local tokens, sign in to Entra ID, keep one for later calls.

`mcpaas login` (and `mcpaas up`, for its own admin) signs a token with the RSA key the
platform keeps in its data dir (`<data dir>/auth/signing-key.pem`): whoever can read that
file controls the local platform anyway, so possession of it is the proof of identity,
and no unauthenticated "give me a token" endpoint has to exist. The token is saved to
`<data dir>/cli-token` (mode 0600); every later command sends it unless `--token` or
`MCPAAS_TOKEN` says otherwise. For an Entra-secured control plane, `device_code_token`
signs in with a device code (`mcpaas login --entra`, cli/login.py) and the access token
is saved the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from rich.markup import escape

from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer

TOKEN_FILE = "cli-token"


def signing_key_path(data_dir: Path) -> Path:
    """Where the local issuer of the platform at `data_dir` keeps its key (as `Settings.auth_key_path`)."""
    return Path(data_dir) / "auth" / "signing-key.pem"


def mint_local(data_dir: Path, user: str, roles: Iterable[Role], groups: Iterable[str] = (),
               lifetime_s: int = 8 * 3600) -> str:
    """A token for local user `user`, signed with the key in `data_dir` (created if missing)."""
    return LocalIssuer(signing_key_path(data_dir)).mint(user, roles, groups=groups, lifetime_s=lifetime_s)


class SignInError(Exception):
    """The Entra ID sign-in did not yield a token (refused, expired code, wrong tenant or app)."""


def device_code_token(tenant: str, client_id: str, scope: str, prompt: Callable[[str, str, datetime], None],
                      transport: Any = None, timeout_s: int = 900) -> AccessToken:
    """An Entra ID access token for `scope`, from the OAuth 2.0 device authorization grant.

    `prompt(verification_uri, user_code, expires_at)` tells the user where to sign in;
    the call then polls the token endpoint until they do (at most `timeout_s` seconds).
    `transport` is an azure-core HttpTransport (tests pass a fake Entra; None: the real
    one). Raises SignInError with Entra's reason. Source: azure-identity
    `DeviceCodeCredential`; https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code
    """
    # imported here: azure.identity takes ~0.6 s to import, which every other command would pay
    from azure.identity import DeviceCodeCredential

    options: dict[str, Any] = {"transport": transport} if transport is not None else {}
    credential = DeviceCodeCredential(client_id=client_id, tenant_id=tenant, prompt_callback=prompt,
                                      timeout=timeout_s, **options)
    try:
        return credential.get_token(scope)
    except ClientAuthenticationError as error:
        raise SignInError(error.message) from None


def save_token(data_dir: Path, token: str) -> Path:
    """Write `token` to `<data_dir>/cli-token`, readable by the owner only; returns the path."""
    path = Path(data_dir) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token)
    return path


def load_token(data_dir: Path) -> str | None:
    """The token saved by `save_token` in `data_dir`, or None when there is none."""
    try:
        return (Path(data_dir) / TOKEN_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def client_snippets(name: str, endpoint: str, token: str) -> str:
    """How to call `endpoint` with `token`: a VS Code `mcp.json` entry and a Python `mcp` client.

    Returned as plain text (markup escaped) for a console to print.
    """
    headers = {"Authorization": f"Bearer {token}"}
    vscode = json.dumps({"servers": {name: {"type": "http", "url": endpoint, "headers": headers}}}, indent=2)
    python = (
        "import asyncio\n"
        "from mcp import Client\n"
        "from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client\n\n"
        "async def main():\n"
        f"    http = create_mcp_http_client(headers={headers!r})\n"
        f"    async with Client(streamable_http_client({endpoint!r}, http_client=http)) as client:\n"
        "        print([tool.name for tool in (await client.list_tools()).tools])\n\n"
        "asyncio.run(main())"
    )
    return escape(f"\n{name} is served at {endpoint}\n\nVS Code (.vscode/mcp.json):\n{vscode}\n\n"
                  f"Python (official mcp SDK):\n{python}\n")
