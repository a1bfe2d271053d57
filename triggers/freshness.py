"""Documentation freshness (NFR-OPS-004; `shared.freshness`): the daily check that audits
newly stale items, and `GET /api/freshness`."""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone

import azure.durable_functions as df
import azure.functions as func

from shared import freshness
from shared.auth.principal import Principal
from shared.errors import BadRequestError
from shared.store import get_store
from triggers.problems import json_response, problem_handler
from triggers.security import authenticated

log = logging.getLogger("mcpaas.triggers.freshness")
bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

CHECK_SCHEDULE = "0 0 6 * * *"  # NCRONTAB, UTC: daily at 06:00


def today() -> date:
    """The UTC date the daily check judges by."""
    return datetime.now(timezone.utc).date()


@bp.timer_trigger(arg_name="timer", schedule=CHECK_SCHEDULE, run_on_startup=False)
def freshness_check(timer: func.TimerRequest) -> None:
    """Audit each newly stale catalog entry and runbook template once."""
    stale = freshness.audit_stale(get_store(), freshness.check(today()))
    log.info("freshness check: %d stale items", stale)


@bp.route(route="freshness", methods=["GET"])
@problem_handler
@authenticated
async def list_freshness(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/freshness[?as_of=YYYY-MM-DD][&stale=true]` → `{"as_of", "max_age_days",
    "items": [{kind, id, title, path, core, last_updated, age_days, stale}]}` judged as of
    `as_of` (default today, UTC; a later date shows what will go stale). 400 for a bad date."""
    try:
        as_of = date.fromisoformat(req.params["as_of"]) if req.params.get("as_of") else today()
    except ValueError:
        raise BadRequestError("as_of must be a date (YYYY-MM-DD)",
                              errors=[{"field": "as_of", "message": "not a date"}]) from None
    found = freshness.check(as_of)
    if req.params.get("stale") == "true":
        found = [finding for finding in found if finding.stale]
    return json_response({"as_of": as_of.isoformat(), "max_age_days": freshness.MAX_AGE_DAYS,
                          "items": [finding.model_dump(mode="json") for finding in found]})
