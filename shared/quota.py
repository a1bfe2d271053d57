"""Quota advisories: usage per model deployment against its limits, the rule that
raises and clears an advisory, attribution and the stored documents (issue 12 item 2,
FR-028, NFR-REL-006, NFR-SEC-007; docs/costs-and-quota.md).

Usage is a window of complete buckets (`quota_bucket_seconds` each, the last
`quota_window_seconds`), each a per-minute rate of tokens and requests. It comes from the
gateway's cost events (embedded: `embedded_usage`) or from Azure Monitor
(`activities.quota`); both give the same `Usage` shape, and `assess` judges it:

- **raise**: every bucket of a full window is above `threshold` (0.8) of a limit;
- **clear**: the newest bucket is at or below it again.

Documents live in the `quota_samples` container (partition key ``region``), told apart
by `kind`: ``sample`` (one per deployment and bucket, id ``sample:{deployment}:{epoch}``:
rewriting one is harmless) and ``advisory`` (id ``advisory:{deployment}:{n}``, the n-th
advisory of that deployment). The deterministic ids make raising idempotent: a repeated
or concurrent raise of the same episode hits the same id (`ConflictError`) and adds
nothing, so a restart during the window neither loses nor duplicates one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.audit import id_at
from shared.store.port import Document, DocumentStore

CONTAINER = "quota_samples"
LOCAL_REGION = "local"
RATES = ("tokens_per_minute", "requests_per_minute")
# an advisory recommends a limit the observed peak would use 60% of: below the 80% line
# with room to grow (Azure assigns tokens-per-minute quota in units of 1,000)
TARGET_UTILIZATION = 0.6
TOKEN_QUOTA_UNIT = 1000
TOP_IDENTITIES = 5


class Bucket(BaseModel):
    """One bucket of usage: its start (UTC) and per-minute rates."""

    start: datetime
    tokens_per_minute: float = 0
    requests_per_minute: float = 0

# the per-minute rates a deployment's limits name (settings `quota_limits`)
Rate = Literal["tokens_per_minute", "requests_per_minute"]


class Usage(BaseModel):
    """A deployment's usage over the window, oldest bucket first, with its limits
    (per minute; a missing limit is not watched)."""

    deployment: str
    region: str = LOCAL_REGION
    limits: dict[str, float] = Field(default_factory=dict)
    buckets: list[Bucket] = Field(default_factory=list)


def bucket_starts(at: datetime, window_s: int, bucket_s: int) -> list[datetime]:
    """Starts of the complete buckets covering the `window_s` seconds before `at`,
    aligned to the epoch (so every replica and restart computes the same buckets)."""
    end = int(at.timestamp()) // bucket_s * bucket_s
    count = max(1, math.ceil(window_s / bucket_s))
    return [datetime.fromtimestamp(end - bucket_s * (count - n), tz=timezone.utc) for n in range(count)]


def ratio(bucket: Bucket, limits: dict[str, float]) -> float:
    """The bucket's highest use of a limit (0.85 = 85%); 0 without limits."""
    return max((getattr(bucket, rate) / limits[rate] for rate in RATES if limits.get(rate)), default=0.0)


def assess(usage: Usage, threshold: float, buckets: int) -> Literal["raise", "clear", "hold"]:
    """``raise`` when all of a full window's `buckets` are above `threshold`, ``clear``
    when the newest one is not, ``hold`` when the window is incomplete (no data yet)."""
    if not usage.buckets:
        return "hold"
    ratios = [ratio(bucket, usage.limits) for bucket in usage.buckets]
    if len(ratios) >= buckets and all(value > threshold for value in ratios[-buckets:]):
        return "raise"
    return "clear" if ratios[-1] <= threshold else "hold"


def recommend(usage: Usage) -> dict[str, int]:
    """A new limit per watched rate: the window's peak at `TARGET_UTILIZATION`, tokens
    rounded up to `TOKEN_QUOTA_UNIT`, never below today's limit."""
    advice = {}
    for rate, limit in usage.limits.items():
        peak = max((getattr(bucket, rate) for bucket in usage.buckets), default=0)
        wanted = peak / TARGET_UTILIZATION
        if rate == "tokens_per_minute":
            wanted = math.ceil(wanted / TOKEN_QUOTA_UNIT) * TOKEN_QUOTA_UNIT
        advice[rate] = int(max(math.ceil(wanted), limit))
    return advice


def _events(store: DocumentStore, model: str, since: datetime, until: datetime) -> list[Document]:
    return store.query("cost_events", {"model": model}, ranges={"id": (id_at(since), id_at(until))})


def embedded_usage(store: DocumentStore, limits: Mapping[str, Mapping[Rate, int]], at: datetime,
                   window_s: int, bucket_s: int) -> list[Usage]:
    """Usage of every deployment in `limits` (settings `quota_limits`) from the cost
    events whose `model` names it: tokens = input + output, requests = events."""
    starts = bucket_starts(at, window_s, bucket_s)
    until = starts[-1] + timedelta(seconds=bucket_s)
    scale = 60 / bucket_s
    usages = []
    for deployment, limit in sorted(limits.items()):
        sums: dict[datetime, list[float]] = {start: [0, 0] for start in starts}
        for event in _events(store, deployment, starts[0], until):
            start = datetime.fromtimestamp(
                int(datetime.fromisoformat(event["time"]).timestamp()) // bucket_s * bucket_s, tz=timezone.utc)
            if start in sums:
                sums[start][0] += event.get("input_tokens", 0) + event.get("output_tokens", 0)
                sums[start][1] += 1
        usages.append(Usage(deployment=deployment, limits={rate: value for rate, value in limit.items()}, buckets=[
            Bucket(start=start, tokens_per_minute=tokens * scale, requests_per_minute=requests * scale)
            for start, (tokens, requests) in sums.items()]))
    return usages


def top_identities(store: DocumentStore, model: str, since: datetime, until: datetime,
                   limit: int = TOP_IDENTITIES) -> list[dict[str, Any]]:
    """The actors whose calls charged to `model` used the most tokens in the range:
    ``[{"actor", "tokens", "requests", "share"}]`` (share of all tokens, 0..1), heaviest first."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for event in _events(store, model, since, until):
        totals[event.get("actor", "")][0] += event.get("input_tokens", 0) + event.get("output_tokens", 0)
        totals[event.get("actor", "")][1] += 1
    everything = sum(tokens for tokens, _ in totals.values()) or 1
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
    return [{"actor": actor, "tokens": tokens, "requests": requests, "share": round(tokens / everything, 4)}
            for actor, (tokens, requests) in ranked]


def sample_documents(usage: Usage, bucket_s: int) -> list[Document]:
    """One ``sample`` document per bucket of `usage` (ids fixed by deployment and bucket)."""
    return [{"id": f"sample:{usage.deployment}:{int(bucket.start.timestamp())}", "kind": "sample",
             "region": usage.region, "deployment": usage.deployment, "at": bucket.start.isoformat(),
             "bucket_seconds": bucket_s, "limits": usage.limits, "ratio": round(ratio(bucket, usage.limits), 4),
             "tokens_per_minute": bucket.tokens_per_minute, "requests_per_minute": bucket.requests_per_minute}
            for bucket in usage.buckets]


def advisories(store: DocumentStore, deployment: str | None = None, state: str | None = None) -> list[Document]:
    """Advisories newest first, optionally of one deployment and in one `state`
    (``open`` or ``cleared``)."""
    filters = {"kind": "advisory", **({"deployment": deployment} if deployment else {})}
    docs = store.query(CONTAINER, filters, order_by="at", descending=True)
    return [doc for doc in docs if state is None or doc["state"] == state]


def advisory_document(usage: Usage, number: int, at: datetime, threshold: float, window_s: int,
                      identities: list[dict[str, Any]]) -> Document:
    """The n-th (`number`) advisory of a deployment, raised at `at`."""
    peak = {rate: max((getattr(b, rate) for b in usage.buckets), default=0) for rate in RATES}
    return {"id": f"advisory:{usage.deployment}:{number}", "kind": "advisory", "region": usage.region,
            "deployment": usage.deployment, "state": "open", "at": at.isoformat(), "cleared_at": None,
            "threshold": threshold, "window_seconds": window_s, "limits": usage.limits, "peak": peak,
            "ratio": round(min(ratio(b, usage.limits) for b in usage.buckets), 4),
            "top_identities": identities, "recommended": recommend(usage)}


def latest_usage(store: DocumentStore, since: datetime) -> list[Document]:
    """Per deployment, its newest sample at or after `since` (for `GET /api/quota`)."""
    newest: dict[str, Document] = {}
    for doc in store.query(CONTAINER, {"kind": "sample"}, order_by="at", descending=True,
                           ranges={"at": (since.isoformat(), None)}):
        newest.setdefault(doc["deployment"], doc)
    return [newest[name] for name in sorted(newest)]
