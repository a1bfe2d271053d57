"""Domain, ports and cross-cutting concerns shared by every MCPaaS deployable."""
