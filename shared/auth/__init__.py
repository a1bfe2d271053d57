"""Identity for the control plane and the gateway: tokens, API keys, principals.

One validation path for two issuers (Entra ID and the embedded local issuer) plus
API keys for service clients (issue 4, FR-005/FR-006, NFR-SEC-001..004).
"""
