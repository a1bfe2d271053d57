"""The catalog's `echo` MCP server: a small stdio server on the official `mcp` SDK.

Tools: `echo(message) -> message` and `add(a, b) -> a + b`. Run it with
`python -m catalog.echo.server`; it speaks MCP over stdin/stdout.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="echo", instructions="Echoes messages and adds numbers.")


@server.tool()
def echo(message: str) -> str:
    """Return `message` unchanged."""
    return message


@server.tool()
def add(a: float, b: float) -> float:
    """Return the sum of `a` and `b`."""
    return a + b


def main() -> None:
    """Serve over stdio until stdin closes."""
    server.run("stdio")


if __name__ == "__main__":
    main()
