"""The `mcpaas` command: the developer's entry point to MCPaaS (DESIGN.md "CLI")."""
