"""A stdio MCP server for the secrets acceptance test: it tells whether it received a
secret without ever sending the value back.

Tool `env_sha256(name)` answers the hex sha256 of environment variable `name` (or
``absent``). Run as ``python tests/e2e/secret_probe_server.py``.
"""

from __future__ import annotations

import hashlib
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="secret-probe")


@server.tool()
def env_sha256(name: str) -> str:
    """The hex sha256 of environment variable `name`, or ``absent``."""
    value = os.environ.get(name)
    return "absent" if value is None else hashlib.sha256(value.encode()).hexdigest()


if __name__ == "__main__":
    server.run("stdio")
