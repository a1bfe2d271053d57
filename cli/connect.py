"""`mcpaas connect --client`: an MCP client's own configuration for a hosted server.

Each client keeps servers in its own file and format; `client_config` builds the entry
and `merge` adds it to an existing file without touching any other entry (a file that
does not parse is left alone and reported, never overwritten). Formats, as the clients
document them:

- vscode: ``.vscode/mcp.json`` ``{"servers": {NAME: {"type": "http", "url", "headers"}}}``
- cursor: ``.cursor/mcp.json`` ``{"mcpServers": {NAME: {"url", "headers"}}}``
- claude-code: ``.mcp.json`` (project scope) ``{"mcpServers": {NAME: {"type": "http", "url", "headers"}}}``
- claude-desktop: ``claude_desktop_config.json`` ``{"mcpServers": {NAME: {"command", "args"}}}``;
  its config file starts stdio servers only, so the entry runs the `supergateway` bridge
  (stdio to Streamable HTTP, with the auth header)
- inspector: an MCP Inspector ``--config`` file
  ``{"mcpServers": {NAME: {"type": "streamable-http", "url", "headers"}}}``
- codex: ``~/.codex/config.toml`` ``[mcp_servers.NAME]`` with ``url`` and ``http_headers`` (TOML)
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import tomlkit

from cli.errors import CliError

BRIDGE = "supergateway@4.0.0"  # pinned: the bridge sees every message and the token


class Client(str, Enum):
    """MCP clients `connect` writes configuration for."""

    VSCODE = "vscode"
    CLAUDE_DESKTOP = "claude-desktop"
    CLAUDE_CODE = "claude-code"
    CURSOR = "cursor"
    CODEX = "codex"
    INSPECTOR = "inspector"


@dataclass(frozen=True)
class Config:
    """One client's configuration: where it lives, the top-level key, the server's entry."""

    client: Client
    path: Path
    root: str
    name: str
    entry: dict[str, Any]

    @property
    def toml(self) -> bool:
        """True when the file is TOML (Codex), else JSON."""
        return self.client is Client.CODEX

    def document(self) -> dict[str, Any]:
        """A whole file holding only this entry."""
        return {self.root: {self.name: self.entry}}

    def text(self) -> str:
        """`document()` in the client's format."""
        return tomlkit.dumps(self.document()) if self.toml else json.dumps(self.document(), indent=2) + "\n"


def _claude_desktop_path() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    if sys.platform == "win32":
        return Path.home() / "AppData" / "Roaming" / "Claude" / "claude_desktop_config.json"
    return Path.home() / ".config" / "Claude" / "claude_desktop_config.json"


def default_path(client: Client) -> Path:
    """Where `client` reads its configuration (project files relative to the current directory)."""
    return {Client.VSCODE: Path(".vscode") / "mcp.json", Client.CURSOR: Path(".cursor") / "mcp.json",
            Client.CLAUDE_CODE: Path(".mcp.json"), Client.CLAUDE_DESKTOP: _claude_desktop_path(),
            Client.INSPECTOR: Path("mcp-inspector.json"),
            Client.CODEX: Path.home() / ".codex" / "config.toml"}[client]


def client_config(client: Client, name: str, url: str, credential: str | None,
                  path: Path | None = None) -> Config:
    """The configuration entry of server `name` at `url` for `client`, sending `credential`
    (a bearer token or API key) as ``Authorization: Bearer ...`` when given."""
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    if client is Client.CLAUDE_DESKTOP:
        args = ["-y", BRIDGE, "--streamableHttp", url, "--logLevel", "none"]
        entry: dict[str, Any] = {"command": "npx",
                                 "args": args + [arg for key, value in headers.items()
                                                 for arg in ("--header", f"{key}: {value}")]}
    elif client is Client.CODEX:
        entry = {"url": url, **({"http_headers": headers} if headers else {})}
    else:
        kind = {Client.VSCODE: "http", Client.CLAUDE_CODE: "http", Client.INSPECTOR: "streamable-http"}.get(client)
        entry = {**({"type": kind} if kind else {}), "url": url, **({"headers": headers} if headers else {})}
    root = {Client.VSCODE: "servers", Client.CODEX: "mcp_servers"}.get(client, "mcpServers")
    return Config(client, path or default_path(client), root, name, entry)


def _read(config: Config) -> Any:
    if not config.path.exists():
        return tomlkit.document() if config.toml else {}
    text = config.path.read_text(encoding="utf-8")
    try:
        return tomlkit.parse(text) if config.toml else (json.loads(text) if text.strip() else {})
    except (ValueError, tomlkit.exceptions.TOMLKitError) as exc:
        raise CliError(f"{config.path} does not parse ({exc}); fix or move it, then run connect --write again "
                       "(it was left unchanged)") from exc


def merge(config: Config) -> bool:
    """Add or replace this server's entry in `config.path`, keeping every other entry (and,
    in TOML, comments); returns True when an entry of that name was replaced. A new file
    is created readable by its owner only: it holds a credential. Raises CliError when the
    existing file does not parse or its top level is not a table."""
    document = _read(config)
    section = document.get(config.root) if hasattr(document, "get") else None
    if not hasattr(document, "get") or (section is not None and not hasattr(section, "get")):
        raise CliError(f"{config.path}: '{config.root}' is not a table; it was left unchanged")
    if section is None:
        section = tomlkit.table() if config.toml else {}
        document[config.root] = section
    replaced = config.name in section
    section[config.name] = config.entry
    text = tomlkit.dumps(document) if config.toml else json.dumps(document, indent=2) + "\n"
    config.path.parent.mkdir(parents=True, exist_ok=True)
    temporary = config.path.with_name(config.path.name + ".mcpaas-tmp")
    mode = config.path.stat().st_mode & 0o777 if config.path.exists() else 0o600
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, config.path)  # atomic: a crash leaves the old file or the new one
    return replaced


def credential_for(api: Any, name: str, client: Client | None, token: str | None, new_key: bool) -> str | None:
    """The credential a client config carries: a new API key limited to server `name` (role
    Reader) with `new_key`, else the CLI's own `token`."""
    if not new_key:
        return token
    label = f"{client.value if client else 'client'}-{name}"
    return api.create_key({"name": label, "roles": ["Reader"], "servers": [name]})["key"]


def endpoint_of(server: dict[str, Any] | None, name: str) -> str:
    """The server's MCP endpoint. Raises CliError saying what to do when there is none."""
    if server is None:
        raise CliError(f"server {name} not found; list servers with `mcpaas status`, "
                       f"or install one with `mcpaas catalog install {name}`")
    if not server.get("endpoint"):
        raise CliError(f"server {name} has no endpoint yet (status {server.get('status')}); "
                       f"wait for it with `mcpaas status {name}`")
    return str(server["endpoint"])
