"""MCP wire format at the gateway: JSON-RPC messages, HTTP responses and errors, the
Streamable HTTP and legacy SSE transports, and the per-session SSE event store."""
