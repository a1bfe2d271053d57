"""Scrubbing credentials out of free text shown to callers (NFR-SEC-002, NFR-SEC-004).

Diagnostic text such as a stdio child's last error can echo what the child printed:
a connection string, a token in a failing URL, an API key in a stack trace. Before such
text leaves the platform it goes through `scrub_credentials`, which replaces every
credential-looking run with ``[REDACTED]`` and caps the length. The patterns are
deliberately broad: a false positive costs a few characters of a diagnostic, a miss
costs a credential.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"
MAX_ERROR_CHARS = 1000  # `last_error` in the gateway's `/servers/{name}/status`

# Names whose value is a secret, as in `name=value`, `name: value`, `"name": "value"`.
_SECRET_NAMES = (r"key|password|passwd|pwd|secret|client[_-]?secret|token|access[_-]?token|"
                 r"refresh[_-]?token|api[_-]?key|apikey|functions[_-]key|signature|credentials?|"
                 r"authorization|private[_-]?key|"
                 r"access[_-]?key|account[_-]?key|shared[_-]?access[_-]?key|"
                 r"shared[_-]?access[_-]?signature|connection[_-]?string|conn[_-]?str")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # HTTP authorization schemes: `Bearer <token>`, `Basic <base64>`
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE), rf"\1 {REDACTED}"),
    # JSON Web Tokens (header.payload.signature, base64url, header starts `{"` = `eyJ`)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # MCPaaS API keys
    (re.compile(r"\bmcpk_[A-Za-z0-9_-]+"), f"mcpk_{REDACTED}"),
    # user:password@ in URLs
    (re.compile(r"(://[^/\s:@]+):[^@\s/]+@"), rf"\1:{REDACTED}@"),
    # query-string keys: `?code=` (Functions keys), `&sig=` (SAS signatures)
    (re.compile(r"(?i)([?&](?:code|sig)=)[^&\s\"']+"), rf"\1{REDACTED}"),
    # name=value / name: value / "name": "value" (connection strings, env, JSON); the name
    # may carry a prefix (`GITHUB_TOKEN=`, `AZURE_CLIENT_SECRET=`, `x-api-key:`)
    (re.compile(rf"(?i)(\b[A-Za-z0-9_.-]*(?:{_SECRET_NAMES})\b[\"']?\s*[=:]\s*[\"']?)[^\s;&,\"'}}]+"), rf"\1{REDACTED}"),
)


def scrub_credentials(text: str | None, limit: int = MAX_ERROR_CHARS) -> str | None:
    """`text` with every credential-looking run replaced by ``[REDACTED]``, cut to `limit`
    characters (a cut is marked with ``…``); None stays None.

    Replaced: bearer/basic authorization values, JWTs, ``mcpk_`` API keys, URL
    passwords, and the value after a secret-like name (``password=``, ``AccountKey=``,
    ``SharedAccessKey=``, ``token:``, ``"api_key": "..."``, ``?code=``, ``sig=``...).
    """
    if text is None:
        return None
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
