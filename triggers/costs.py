"""HTTP trigger of cost reporting: `GET /api/costs` (issue 12 item 1, FR-026,
NFR-OPS-008; docs/costs-and-quota.md).

Thin like `triggers.governance`: authenticate, authorize as the invocation audit does
(`check_invocations`: Operators and Admins read every server, others one server of
their team or shared with them), one store query, answer JSON or CSV.
"""

from __future__ import annotations

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

from shared import costs
from shared.auth.principal import Principal
from shared.errors import BadRequestError
from shared.models import utc_now
from shared.store import get_store
from triggers.governance import time_param
from triggers.problems import json_response, problem_handler
from triggers.security import authenticated, check_invocations

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)
# the window a query without `since` covers
DEFAULT_DAYS = 30


def _group_by(req: func.HttpRequest) -> list[str]:
    text = req.params.get("group_by", "server")
    fields = [field.strip() for field in text.split(",") if field.strip()]
    bad = [field for field in fields if field not in costs.GROUPS] or len(set(fields)) != len(fields)
    if bad:
        raise BadRequestError("bad query parameter group_by", errors=[{
            "field": "group_by", "message": f"comma-separated, without repeats, from {', '.join(costs.GROUPS)}"}])
    return fields


@bp.route(route="costs", methods=["GET"])
@problem_handler
@authenticated
async def get_costs(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/costs?group_by=server,actor,tool,day&since=&until=&server=&actor=&tool=&model=`
    → `{"group_by": [...], "since", "until", "items": [row, ...]}` (rows: the group fields,
    calls, input/output/total tokens, bytes in/out, mean latency_ms, errors), or the same
    rows as CSV with `Accept: text/csv`.

    `group_by` defaults to ``server`` (``""`` is one total row); `since` defaults to
    30 days before `until` (default now); both inclusive ISO-8601 times. 400 for a bad
    field or time; 403 (audited) and 404 as for `/api/audit/invocations`.
    """
    group_by = _group_by(req)
    server = req.params.get("server") or None
    check_invocations(principal, server)
    until = time_param(req, "until") or utc_now()
    since = time_param(req, "since") or until - timedelta(days=DEFAULT_DAYS)
    if since > until:
        raise BadRequestError("since is after until", errors=[{"field": "since", "message": "must not be after until"}])
    rows = costs.query_costs(get_store(), group_by=group_by, since=since, until=until, server=server,
                             actor=req.params.get("actor") or None, tool=req.params.get("tool") or None,
                             model=req.params.get("model") or None)
    if "text/csv" in req.headers.get("Accept", ""):
        return func.HttpResponse(costs.to_csv(rows, group_by), status_code=200,
                                 mimetype="text/csv", charset="utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="costs.csv"'})
    return json_response({"group_by": group_by, "since": since.isoformat(), "until": until.isoformat(),
                          "items": rows})
