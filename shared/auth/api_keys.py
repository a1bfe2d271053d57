"""API keys for service clients: created over REST, shown once, stored hashed.

A key reads `mcpk_<id>_<secret>`; only SHA-256 of the secret is stored (the secret
has 256 bits of entropy, so a fast hash suffices; no salt needed against guessing).
Keys carry roles, an optional server scope and an expiry, and can be revoked
(issue 4, item 1; NFR-SEC-003). Container `api_keys`, partition key `id`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.auth.principal import Principal, Role, parse_scopes
from shared.auth.tokens import AuthenticationError
from shared.errors import NotFoundError
from shared.models import utc_now
from shared.store.port import DocumentStore

PREFIX = "mcpk_"
_FORMAT = re.compile(r"^mcpk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")


class ApiKey(BaseModel):
    """The stored record of a key (never the key itself)."""

    id: str
    name: str = Field(min_length=1, max_length=100)
    roles: list[Role]
    servers: list[str] | None = None
    # scope bindings for servers with a tenancy, e.g. {"project_id": ["p1"]} (FR-019)
    scopes: dict[str, list[str]] = Field(default_factory=dict)
    expires_at: datetime | None = None
    revoked: bool = False
    created_by: str
    created_at: datetime = Field(default_factory=utc_now)


class ApiKeyRequest(BaseModel):
    """Body of `POST /api/keys`: what the new key may do, and until when."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    servers: list[str] | None = Field(default=None, max_length=200)
    expires_at: datetime | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: DocumentStore, *, name: str, roles: list[Role], created_by: str,
               servers: list[str] | None = None, expires_at: datetime | None = None,
               scopes: dict[str, list[str]] | None = None) -> tuple[str, ApiKey]:
    """Create a key; returns `(plaintext, record)`. The plaintext is not recoverable later."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    record = ApiKey(id=key_id, name=name, roles=roles, servers=servers, expires_at=expires_at,
                    created_by=created_by, scopes=scopes or {})
    store.create("api_keys", {**record.model_dump(mode="json"), "secret_sha256": _digest(secret)})
    return f"{PREFIX}{key_id}_{secret}", record


def verify_key(store: DocumentStore, presented: str) -> Principal:
    """The principal of a presented key. AuthenticationError if malformed, unknown,
    wrong, revoked or expired (one generic reason per case, never the key)."""
    return verify_key_expiry(store, presented)[0]


def verify_key_expiry(store: DocumentStore, presented: str) -> tuple[Principal, float | None]:
    """`verify_key`, plus the key's expiry (seconds since the epoch; None: never), so a
    cache never trusts it past that moment."""
    match = _FORMAT.fullmatch(presented)
    if not match:
        raise AuthenticationError("malformed API key")
    key_id, secret = match.groups()
    try:
        doc = store.read("api_keys", key_id, key_id)
    except NotFoundError:
        raise AuthenticationError("unknown API key") from None
    if not hmac.compare_digest(doc["secret_sha256"], _digest(secret)):
        raise AuthenticationError("unknown API key")
    record = ApiKey.model_validate(doc)
    if record.revoked:
        raise AuthenticationError("API key revoked")
    if record.expires_at is not None and record.expires_at <= utc_now():
        raise AuthenticationError("API key expired")
    principal = Principal(subject=f"key:{record.id}", name=record.name, kind="api_key",
                          roles=frozenset(record.roles),
                          servers=frozenset(record.servers) if record.servers is not None else None,
                          scopes=parse_scopes(record.scopes))
    return principal, record.expires_at.timestamp() if record.expires_at is not None else None


def revoke_key(store: DocumentStore, key_id: str) -> ApiKey:
    """Mark a key revoked (etag-guarded). NotFoundError if unknown; ConflictError on a race."""
    doc = store.read("api_keys", key_id, key_id)
    updated = {**doc, "revoked": True}
    store.replace("api_keys", updated, if_match=doc["_etag"])
    return ApiKey.model_validate(updated)


def list_keys(store: DocumentStore) -> list[ApiKey]:
    """Every key record, newest first (hashes are not part of the records)."""
    return [ApiKey.model_validate(doc) for doc in store.query("api_keys", order_by="created_at", descending=True)]
