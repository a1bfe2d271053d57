"""Activities of the quota advisory workflow: sample usage, raise and clear advisories
(issue 12 item 2, FR-028, NFR-REL-006, NFR-SEC-007; docs/costs-and-quota.md).

All I/O of `orchestrators.quota_advisory` lives here: the store, Azure Monitor and
Azure Resource Manager (adapter selection: settings `quota_accounts` set means Azure),
the audit trail and the optional webhook. Every activity is idempotent (`shared.quota`
explains the deterministic ids).

Azure: usage per model deployment is the account's Azure Monitor metrics
``TokenTransaction`` (processed inference tokens) and ``AzureOpenAIRequests``, split by
the ``ModelDeploymentName`` dimension, at the bucket's granularity
(https://learn.microsoft.com/azure/ai-services/openai/how-to/monitor-openai#azure-openai-metrics);
limits are each deployment's `rateLimits` (``token`` and ``request`` rules, scaled to a
minute), else ``sku.capacity`` thousand tokens per minute
(https://learn.microsoft.com/azure/ai-services/openai/how-to/quota).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
import httpx
from azure.core.credentials import TokenCredential
from azure.mgmt.core.tools import parse_resource_id

from shared import quota
from shared.errors import ConflictError
from shared.models import AuditEvent
from shared.settings import Settings, get_settings
from shared.store import get_store
from shared.store.port import Document, DocumentStore

log = logging.getLogger("mcpaas.quota")
bp = df.Blueprint()
ACTOR = "mcpaas-quota"
TOKENS_METRIC, REQUESTS_METRIC = "TokenTransaction", "AzureOpenAIRequests"
DEPLOYMENT_DIMENSION = "ModelDeploymentName"
WEBHOOK_TIMEOUT_S = 5.0


def _limits(deployment: Any) -> dict[str, float]:
    """A deployment's per-minute limits from its rate-limit rules (or SKU capacity)."""
    limits: dict[str, float] = {}
    for rule in (deployment.properties.rate_limits or []) if deployment.properties else []:
        rate = {"token": "tokens_per_minute", "request": "requests_per_minute"}.get((rule.key or "").lower())
        if rate and rule.count and rule.renewal_period:
            limits[rate] = rule.count * 60 / rule.renewal_period
    if "tokens_per_minute" not in limits and deployment.sku is not None and deployment.sku.capacity:
        limits["tokens_per_minute"] = deployment.sku.capacity * quota.TOKEN_QUOTA_UNIT
    return limits


def azure_usage(accounts: list[str], at: datetime, window_s: int, bucket_s: int,
                credential: TokenCredential | None = None, **client_options: Any) -> list[quota.Usage]:
    """Usage of every deployment of the Azure OpenAI / AI Foundry `accounts` (ARM ids)
    over the window before `at`, through `azure-mgmt-cognitiveservices` (deployments,
    limits, region) and `azure-monitor-query` (metrics). `client_options` go to every
    client (tests pass a `transport`). Raises azure-core errors; the activity retries."""
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
    from azure.monitor.query import MetricAggregationType, MetricsQueryClient

    if credential is None:
        from azure.identity import DefaultAzureCredential  # managed identity on Azure Functions
        credential = DefaultAzureCredential()
    starts = quota.bucket_starts(at, window_s, bucket_s)
    until = starts[-1] + timedelta(seconds=bucket_s)
    metrics = MetricsQueryClient(credential, **client_options)
    usages = []
    for account in accounts:
        parts = parse_resource_id(account)  # values typed str | int; these three are names
        subscription, group, name = (str(parts[key]) for key in ("subscription", "resource_group", "name"))
        arm = CognitiveServicesManagementClient(credential, subscription, **client_options)
        region = arm.accounts.get(group, name).location or quota.LOCAL_REGION
        result = metrics.query_resource(account, [TOKENS_METRIC, REQUESTS_METRIC], timespan=(starts[0], until),
                                        granularity=timedelta(seconds=bucket_s),
                                        aggregations=[MetricAggregationType.TOTAL],
                                        filter=f"{DEPLOYMENT_DIMENSION} eq '*'")
        totals: dict[tuple[str, str], dict[datetime, float]] = {}
        for metric in result.metrics:
            for series in metric.timeseries:
                deployed = next((value for key, value in series.metadata_values.items()
                                 if key.lower() == DEPLOYMENT_DIMENSION.lower()), "")
                totals[(deployed, metric.name)] = {point.timestamp: point.total or 0 for point in series.data}
        scale = 60 / bucket_s
        for deployment in arm.deployments.list(group, name):
            assert deployment.name is not None  # ARM names every deployment it lists
            tokens = totals.get((deployment.name, TOKENS_METRIC), {})
            requests = totals.get((deployment.name, REQUESTS_METRIC), {})
            usages.append(quota.Usage(deployment=deployment.name, region=region, limits=_limits(deployment), buckets=[
                quota.Bucket(start=start, tokens_per_minute=tokens.get(start, 0) * scale,
                             requests_per_minute=requests.get(start, 0) * scale) for start in starts]))
    return usages


def sample(store: DocumentStore, settings: Settings, at: datetime) -> dict[str, Any]:
    """Usage of every watched deployment (Azure or embedded), stored as samples, with the
    rule's parameters and the open advisories: the orchestration's whole input."""
    window_s, bucket_s = settings.quota_window_seconds, settings.quota_bucket_seconds
    if settings.quota_accounts:
        usages = azure_usage(settings.quota_accounts, at, window_s, bucket_s)
    else:
        usages = quota.embedded_usage(store, settings.quota_limits, at, window_s, bucket_s)
    for usage in usages:
        store.upsert_many(quota.CONTAINER, quota.sample_documents(usage, bucket_s))
    open_ = {doc["deployment"]: {"id": doc["id"], "region": doc["region"]}
             for doc in quota.advisories(store, state="open")}
    return {"threshold": settings.quota_threshold, "window_seconds": window_s, "bucket_seconds": bucket_s,
            "buckets": len(quota.bucket_starts(at, window_s, bucket_s)), "open": open_,
            "usages": [usage.model_dump(mode="json") for usage in usages]}


def _audit(store: DocumentStore, advisory: Document, event: str) -> None:
    """The audit event of an advisory's transition; its id is fixed, so at most one."""
    detail = (f"{advisory['deployment']} above {advisory['threshold']:.0%} of its limit for "
              f"{advisory['window_seconds']}s; recommended {advisory['recommended']}"
              if event == "raised" else f"{advisory['deployment']} back under its limit")
    try:
        store.create("audit", AuditEvent(id=f"{advisory['id']}:{event}", actor=ACTOR,
                                         action=f"quota.advisory.{event}", entity=f"quota:{advisory['deployment']}",
                                         result="succeeded", detail=detail).model_dump(mode="json"))
    except ConflictError:
        pass  # a retried activity: the event exists


def _notify(url: str | None, advisory: Document, event: str) -> None:
    """POST the advisory to the webhook; a failure is logged, never raised (optional)."""
    if not url:
        return
    payload = {"event": f"quota.advisory.{event}",
               "advisory": {key: value for key, value in advisory.items() if not key.startswith("_")}}
    try:
        httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S).raise_for_status()
    except httpx.HTTPError as error:
        log.warning("quota webhook %s failed for %s: %s", url, advisory["id"], error)


def raise_advisory(store: DocumentStore, settings: Settings, usage: quota.Usage, at: datetime) -> Document:
    """Open the next advisory of `usage.deployment` unless one is open; audit and notify
    once. Returns the open advisory (new or existing)."""
    existing = quota.advisories(store, usage.deployment)
    current = next((doc for doc in existing if doc["state"] == "open"), None)
    fresh = False
    if current is None:
        window = timedelta(seconds=settings.quota_window_seconds)
        identities = quota.top_identities(store, usage.deployment, at - window, at)
        doc = quota.advisory_document(usage, len(existing) + 1, at, settings.quota_threshold,
                                      settings.quota_window_seconds, identities)
        try:
            current, fresh = store.create(quota.CONTAINER, doc), True
        except ConflictError:  # the same episode raised by a retry or a concurrent run
            current = store.read(quota.CONTAINER, doc["id"], doc["region"])
    _audit(store, current, "raised")
    if fresh:
        _notify(settings.quota_webhook_url, current, "raised")
    return current


def clear_advisory(store: DocumentStore, settings: Settings, advisory_id: str, region: str, at: datetime) -> Document:
    """Close an open advisory (etag-checked); audit and notify once."""
    doc = store.read(quota.CONTAINER, advisory_id, region)
    if doc["state"] == "open":
        body = {key: value for key, value in doc.items() if key != "_etag"}
        doc = store.replace(quota.CONTAINER, {**body, "state": "cleared", "cleared_at": at.isoformat()},
                            if_match=doc["_etag"])
        _notify(settings.quota_webhook_url, doc, "cleared")
    _audit(store, doc, "cleared")
    return doc


@bp.activity_trigger(input_name="job")
def quota_sample(job: dict[str, Any]) -> dict[str, Any]:
    """`{"at": iso}` → `sample`'s report."""
    return sample(get_store(), get_settings(), datetime.fromisoformat(job["at"]))


@bp.activity_trigger(input_name="job")
def quota_raise(job: dict[str, Any]) -> str:
    """`{"usage": Usage, "at": iso}` → the open advisory's id."""
    usage = quota.Usage.model_validate(job["usage"])
    return raise_advisory(get_store(), get_settings(), usage, datetime.fromisoformat(job["at"]))["id"]


@bp.activity_trigger(input_name="job")
def quota_clear(job: dict[str, Any]) -> str:
    """`{"id", "region", "at"}` → the cleared advisory's id."""
    return clear_advisory(get_store(), get_settings(), job["id"], job["region"],
                          datetime.fromisoformat(job["at"]))["id"]
