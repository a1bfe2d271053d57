"""MCP sessions of `package` servers: the session object and its routing, the `shared`
and `isolated` session modes, the supervisor that caps and reaps them, and the warm pool."""
