"""Feedback on runbooks, templates and catalog entries (FR-011, PRD section 18).

One `feedback` document per entry, partitioned (the container's `server` field) by the
artifact it is about, ``<kind>:<id>``, so "the feedback of this runbook" is one
partition. The author is the caller's subject, never a field of the request. Status
moves between `new`, `triaged` and `resolved` (Operators and Admins,
`Permission.FEEDBACK_TRIAGE`). Posting is rate-limited per identity with the `limits`
library (`shared.ratelimit.RateLimiter`, Redis when ``redis_url`` is set).
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared import catalog, runbooks
from shared.errors import BadRequestError, MCPaaSError, NotFoundError
from shared.models import utc_now
from shared.ratelimit import RateLimitDecision, RateLimiter
from shared.store import DocumentStore

TEMPLATES_DIR = catalog.CATALOG_DIR / "templates"
EMPTY: dict[str, float | int] = {"count": 0, "average": 0.0}


class ArtifactKind(str, Enum):
    """What a feedback entry is about."""

    RUNBOOK = "runbook"
    TEMPLATE = "template"
    CATALOG = "catalog"


class FeedbackStatus(str, Enum):
    """Where an entry is in triage."""

    NEW = "new"
    TRIAGED = "triaged"
    RESOLVED = "resolved"


class FeedbackRequest(BaseModel):
    """Body of `POST /api/feedback`: the artifact, a rating 1-5 and optional text."""

    model_config = ConfigDict(extra="forbid")

    artifact_kind: ArtifactKind
    artifact_id: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9][a-z0-9._/-]*$")
    rating: int = Field(ge=1, le=5)
    text: str = Field(default="", max_length=4000)


class FeedbackStatusChange(BaseModel):
    """Body of `PATCH /api/feedback/{id}`."""

    model_config = ConfigDict(extra="forbid")

    status: FeedbackStatus


class Feedback(BaseModel):
    """One stored entry; `server` is the partition key, ``<artifact_kind>:<artifact_id>``."""

    id: str
    server: str
    artifact_kind: ArtifactKind
    artifact_id: str
    rating: int
    text: str = ""
    author: str
    status: FeedbackStatus = FeedbackStatus.NEW
    status_by: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)


class TooManyRequestsError(MCPaaSError):
    """The caller posted more feedback than `feedback_rate_limit` allows (429); `headers`
    carry `Retry-After` and `X-RateLimit-*`."""

    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, decision: RateLimitDecision) -> None:
        super().__init__(detail)
        self.headers = decision.headers()


def _template_ids() -> set[str]:
    # a template is named by its path under catalog/templates without the Jinja2 suffix
    return {str(path.relative_to(TEMPLATES_DIR)).removesuffix(".j2")
            for path in TEMPLATES_DIR.rglob("*.j2")}


def artifact_exists(kind: ArtifactKind, artifact_id: str, data_dir: Path) -> bool:
    """True when runbook, template or catalog entry `artifact_id` exists (catalog entries:
    curated, or imported under `data_dir`, `shared.catalog`)."""
    if kind is ArtifactKind.RUNBOOK:
        return artifact_id in runbooks.load_library()
    if kind is ArtifactKind.CATALOG:
        return artifact_id in {entry.name for entry in catalog.load_catalog(catalog.catalog_dirs(data_dir))}
    return artifact_id in _template_ids()


@functools.lru_cache(maxsize=4)
def _limiter(storage_uri: str, limit: str) -> RateLimiter:
    return RateLimiter(storage_uri, per_identity=limit)


def admit(subject: str, storage_uri: str, limit: str) -> None:
    """Count one post by `subject` against `limit` (a `limits` string such as ``20/hour``).

    Raises TooManyRequestsError (429) once the window is full.
    """
    decision = _limiter(storage_uri, limit).hit(f"feedback:{subject}", "feedback")
    if not decision.allowed:
        raise TooManyRequestsError(f"at most {limit} feedback entries per identity; retry in "
                                   f"{decision.retry_after_s} s", decision)


def create(store: DocumentStore, request: FeedbackRequest, author: str, data_dir: Path) -> Feedback:
    """Store `request` by `author` as a `new` entry. Raises BadRequestError (400, naming
    `artifact_id`) for an artifact that does not exist (`artifact_exists`)."""
    if not artifact_exists(request.artifact_kind, request.artifact_id, data_dir):
        raise BadRequestError(f"no {request.artifact_kind.value} '{request.artifact_id}'",
                              errors=[{"field": "artifact_id",
                                       "message": f"unknown {request.artifact_kind.value}"}])
    # ids sort by creation time, so "newest first" is an id order too
    entry = Feedback(id=f"{utc_now().strftime('%Y%m%d%H%M%S%f')}-{uuid.uuid4().hex[:8]}",
                     server=f"{request.artifact_kind.value}:{request.artifact_id}",
                     artifact_kind=request.artifact_kind, artifact_id=request.artifact_id,
                     rating=request.rating, text=request.text, author=author)
    store.create("feedback", entry.model_dump(mode="json"))
    return entry


def query(store: DocumentStore, *, kind: ArtifactKind | None = None, artifact_id: str | None = None,
          status: FeedbackStatus | None = None, limit: int = 100) -> list[Feedback]:
    """Entries newest first, filtered by artifact (one partition when kind and id are
    both given) and status."""
    filters: dict[str, Any] = {}
    if kind is not None:
        filters["artifact_kind"] = kind.value
    if status is not None:
        filters["status"] = status.value
    partition = f"{kind.value}:{artifact_id}" if kind is not None and artifact_id else None
    if artifact_id and partition is None:
        filters["artifact_id"] = artifact_id
    docs = store.query("feedback", filters, partition_key=partition, order_by="id", descending=True, limit=limit)
    return [Feedback.model_validate(doc) for doc in docs]


def summaries(store: DocumentStore, kind: str) -> dict[str, dict[str, float | int]]:
    """Per artifact id of `kind`: `{"count", "average"}` of the ratings (shown with the artifact)."""
    totals: dict[str, list[int]] = {}
    for doc in store.query("feedback", {"artifact_kind": kind}):
        totals.setdefault(doc["artifact_id"], []).append(int(doc["rating"]))
    return {key: {"count": len(values), "average": round(sum(values) / len(values), 2)}
            for key, values in totals.items()}


def set_status(store: DocumentStore, entry_id: str, status: FeedbackStatus,
               actor: str) -> tuple[Feedback, Feedback]:
    """Move entry `entry_id` to `status` (etag-guarded: a concurrent change answers 409).

    Returns (before, after). Raises NotFoundError (404) for an unknown id.
    """
    docs = store.query("feedback", {"id": entry_id}, limit=1)
    if not docs:
        raise NotFoundError(f"feedback '{entry_id}' not found")
    before = Feedback.model_validate(docs[0])
    after = before.model_copy(update={"status": status, "status_by": actor, "updated_at": utc_now()})
    store.replace("feedback", after.model_dump(mode="json"), if_match=docs[0]["_etag"])
    return before, after
