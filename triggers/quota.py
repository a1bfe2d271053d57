"""Triggers of quota advisories (issue 12 item 2, FR-028, NFR-REL-006, NFR-SEC-007;
docs/costs-and-quota.md): the sampling timer and `GET /api/quota`,
`GET /api/quota/advisories`.

Thin: the timer starts one `quota_advisory` round; the routes authorize (audit.read:
Operators and Admins, because advisories name the identities behind the usage) and
answer one store read.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

from shared import quota
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.errors import BadRequestError
from shared.models import utc_now
from shared.settings import get_settings
from shared.store import get_store
from triggers.problems import json_response, problem_handler
from triggers.security import requires

log = logging.getLogger("mcpaas.quota")
bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)
# every minute, at second 0 (NCRONTAB, seconds first): one bucket of the default 60 s
SAMPLE_SCHEDULE = "0 * * * * *"


def _public(doc: dict) -> dict:
    return {key: value for key, value in doc.items() if not key.startswith("_") and key != "kind"}


@bp.timer_trigger(arg_name="timer", schedule=SAMPLE_SCHEDULE, run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def quota_timer(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Start one `quota_advisory` round (rounds are idempotent: a late or doubled one is harmless)."""
    instance_id = await client.start_new("quota_advisory", None, None)
    log.info("quota round %s started%s", instance_id, " (past due)" if timer.past_due else "")


@bp.route(route="quota", methods=["GET"])
@problem_handler
@requires(Permission.AUDIT_READ)
async def get_quota(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/quota` → `{"threshold", "window_seconds", "bucket_seconds", "items": [...]}`:
    per deployment its newest sample (per-minute `tokens_per_minute` and
    `requests_per_minute`, `limits`, `ratio` of the most used limit, `at`) and its open
    advisory id (`advisory`, null when none). 401/403 without audit.read."""
    settings = get_settings()
    since = utc_now() - timedelta(seconds=settings.quota_window_seconds + 2 * settings.quota_bucket_seconds)
    store = get_store()
    open_ = {doc["deployment"]: doc["id"] for doc in quota.advisories(store, state="open")}
    items = [{**_public(doc), "advisory": open_.get(doc["deployment"])} for doc in quota.latest_usage(store, since)]
    return json_response({"threshold": settings.quota_threshold, "window_seconds": settings.quota_window_seconds,
                          "bucket_seconds": settings.quota_bucket_seconds, "items": items})


@bp.route(route="quota/advisories", methods=["GET"])
@problem_handler
@requires(Permission.AUDIT_READ)
async def list_advisories(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/quota/advisories?state=open|cleared&deployment=` → `{"items": [advisory, ...]}`
    newest first: deployment, state, `at` (raised), `cleared_at`, limits, peak, ratio,
    `top_identities`, `recommended`. 400 for another state."""
    state = req.params.get("state") or None
    if state not in (None, "open", "cleared"):
        raise BadRequestError("bad query parameter state",
                              errors=[{"field": "state", "message": "expected open or cleared"}])
    docs = quota.advisories(get_store(), req.params.get("deployment") or None, state)
    return json_response({"items": [_public(doc) for doc in docs]})
