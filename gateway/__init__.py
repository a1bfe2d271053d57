"""The MCP data plane (DESIGN.md "Gateway").

An ASGI app serving every hosted server at ``/servers/{name}/mcp`` over Streamable
HTTP: ``package`` servers as one stdio child process per MCP session, ``remote`` servers
through an HTTP proxy. Build it with :func:`gateway.app.create_app`; run it with
``python -m gateway``.
"""
