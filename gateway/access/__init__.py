"""Access control at the gateway: authentication, the guard every request passes,
per-server and per-tool policy, tenancy parameters and rate limits."""
