"""HTTP triggers of feedback (FR-011): `POST/GET /api/feedback`, `PATCH /api/feedback/{id}`.

Thin like `triggers.http_api`: validate, authenticate and authorize
(`triggers.security`), one store write or read (`shared.feedback`), answer. Status
changes are audited with the caller's subject.
"""

from __future__ import annotations

from urllib.parse import urljoin

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import feedback
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.errors import BadRequestError, validation_errors
from shared.settings import get_settings
from shared.store import get_store
from triggers.http_api import parse_body
from triggers.problems import json_response, problem_handler, problem_response
from triggers.security import authenticated, check, record_decision, requires

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)


class FeedbackQuery(BaseModel):
    """The query of `GET /api/feedback`."""

    model_config = ConfigDict(extra="ignore")

    artifact_kind: feedback.ArtifactKind | None = None
    artifact_id: str | None = Field(default=None, max_length=200)
    status: feedback.FeedbackStatus | None = None
    limit: int = Field(default=100, ge=1, le=500)


@bp.route(route="feedback", methods=["POST"])
@problem_handler
@authenticated
async def post_feedback(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`POST /api/feedback` (FeedbackRequest) → 201 Feedback, authored by the caller.

    400 for a bad body or an unknown artifact; 429 problem with `Retry-After` past
    `feedback_rate_limit` posts per identity.
    """
    request = parse_body(req, feedback.FeedbackRequest, "feedback")
    check(principal, Permission.SERVER_READ, entity="feedback")
    settings = get_settings()
    try:
        feedback.admit(principal.subject, settings.redis_url or "memory://", settings.feedback_rate_limit)
    except feedback.TooManyRequestsError as error:
        response = problem_response(error, instance=req.url)
        response.headers.update(error.headers)
        return response
    entry = feedback.create(get_store(), request, principal.subject, settings.data_dir)
    return json_response(entry.model_dump(mode="json"), status=201,
                         headers={"Location": urljoin(req.url, f"/api/feedback/{entry.id}")})


@bp.route(route="feedback", methods=["GET"])
@problem_handler
@authenticated
async def list_feedback(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/feedback?artifact_kind=&artifact_id=&status=&limit=` → `{"items": [Feedback, ...]}`
    newest first; 400 for a bad filter."""
    try:
        query = FeedbackQuery.model_validate({key: value for key, value in req.params.items() if value})
    except ValidationError as error:
        raise BadRequestError("invalid feedback query", errors=validation_errors(error)) from None
    check(principal, Permission.SERVER_READ, entity="feedback")
    entries = feedback.query(get_store(), kind=query.artifact_kind, artifact_id=query.artifact_id,
                             status=query.status, limit=query.limit)
    return json_response({"items": [entry.model_dump(mode="json") for entry in entries]})


@bp.route(route="feedback/{feedback_id}", methods=["PATCH"])
@problem_handler
@requires(Permission.FEEDBACK_TRIAGE)
async def patch_feedback(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`PATCH /api/feedback/{id}` `{"status": "new"|"triaged"|"resolved"}` → the Feedback.

    Operators and Admins only (403 otherwise, audited); 400 for a bad body; 404 for an
    unknown id; 409 on a concurrent change.
    """
    change = parse_body(req, feedback.FeedbackStatusChange, "feedback status")
    entry_id = req.route_params["feedback_id"]
    before, after = feedback.set_status(get_store(), entry_id, change.status, principal.subject)
    record_decision(principal, "feedback.status", f"feedback:{entry_id}", "succeeded",
                    f"{before.status.value} -> {after.status.value}",
                    diff={"status": {"from": before.status.value, "to": after.status.value}})
    return json_response(after.model_dump(mode="json"))
