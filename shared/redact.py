"""Scrubbing credentials out of free text shown to callers (NFR-SEC-002, NFR-SEC-004).

Diagnostic text such as a stdio child's last error can echo what the child printed:
a connection string, a token in a failing URL, an API key in a stack trace. Before such
text leaves the platform it goes through `scrub_credentials`, which replaces every
credential-looking run with ``[REDACTED]`` and caps the length. The patterns are
deliberately broad: a false positive costs a few characters of a diagnostic, a miss
costs a credential.

Message bodies kept for diagnosis (devhost's dead-letter queue) go through
`withhold_secret_values`, which removes a deploy request's write-only secret values by
their place in the spec rather than by their look.
"""

from __future__ import annotations

import json
import re
from typing import Any

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
    (re.compile(rf"(?i)(\b[A-Za-z0-9_.-]*(?:{_SECRET_NAMES})\b[\"']?\s*[=:]\s*[\"']?)[^\s;&,\"'}}]+"),
     rf"\1{REDACTED}"),
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


# A body whose secrets cannot be located (not a JSON object) is not kept at all.
WITHHELD_BODY = b'"[WITHHELD: not a JSON object]"'
_SPEC_SECTIONS = ("package", "container")  # `ServerSpec` sections that carry `secrets`


def withhold_secret_values(body: bytes) -> tuple[bytes, list[str]]:
    """A deploy-request message body with its write-only secret values replaced.

    Returns ``(body, values)``: the body re-serialised with every
    ``{package,container}.secrets.<NAME>.value`` (of ``spec`` and of the body itself)
    replaced by ``[REDACTED]`` (an entry that is not an object is replaced whole), and the
    replaced string values, for :func:`scrub_values`. A body that is not a JSON object
    becomes :data:`WITHHELD_BODY`. Idempotent. Source: NFR-SEC-002, docs/secrets.md.
    """
    try:
        document = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        return WITHHELD_BODY, []
    if not isinstance(document, dict):
        return WITHHELD_BODY, []
    values: list[str] = []
    for holder in (document, document.get("spec")):
        for section in _SPEC_SECTIONS:
            part = holder.get(section) if isinstance(holder, dict) else None
            secrets = part.get("secrets") if isinstance(part, dict) else None
            if isinstance(secrets, dict):
                for name, source in list(secrets.items()):
                    values.extend(_withhold(secrets, name, source))
    return json.dumps(document).encode(), values


def _withhold(secrets: dict[str, Any], name: str, source: Any) -> list[str]:
    if not isinstance(source, dict):
        secrets[name] = REDACTED
        return [source] if isinstance(source, str) and source != REDACTED else []
    value = source.get("value")
    if value is None or value == REDACTED:
        return []
    source["value"] = REDACTED
    return [value] if isinstance(value, str) else [json.dumps(value)]


def scrub_values(text: str | None, values: list[str]) -> str | None:
    """`text` with every occurrence of each of `values` replaced by ``[REDACTED]`` (longest
    first, so a value containing another is replaced whole); None stays None."""
    if text is None:
        return None
    for value in sorted((v for v in values if v), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
