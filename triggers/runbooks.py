"""HTTP trigger of adaptive runbooks (FR-009, FR-010): `GET /api/runbooks`.

Thin like `triggers.http_api`: validate the query, authenticate and authorize
(`triggers.security`), read one server, render (`shared.runbooks`), answer.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import feedback, runbooks
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.errors import BadRequestError, NotFoundError, validation_errors
from shared.models import ServerKind
from shared.settings import get_settings
from shared.store import get_store
from triggers.problems import json_response, problem_handler
from triggers.security import authenticated, check, check_server

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

MARKDOWN = "text/markdown"


class RunbookQuery(BaseModel):
    """The query of `GET /api/runbooks`; every field optional, unknown ones ignored."""

    model_config = ConfigDict(extra="ignore")

    role: runbooks.RunbookRole | None = None
    scenario: runbooks.Scenario | None = None
    server: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=80)


def _query(req: func.HttpRequest) -> RunbookQuery:
    try:
        return RunbookQuery.model_validate({key: value for key, value in req.params.items() if value})
    except ValidationError as error:
        raise BadRequestError("invalid runbook query", errors=validation_errors(error)) from None


def _wants_json(req: func.HttpRequest) -> bool:
    accept = req.headers.get("Accept", "")
    return "application/json" in accept and MARKDOWN not in accept


def _listing(library: dict[str, runbooks.Template], query: RunbookQuery,
             params: runbooks.RunbookParams) -> list[dict]:
    """Metadata and feedback summary of the runbooks matching `query` and, for a named
    server, its kind (with both a role and a scenario: only those with steps for the pair)."""
    chosen = [library[query.id]] if query.id else list(library.values())
    chosen = [template for template in chosen if (not query.role or query.role in template.meta.roles)
              and (not query.scenario or query.scenario in template.meta.scenarios)
              and (params.server.example or ServerKind(params.server.kind) in template.meta.kinds)]
    if query.role and query.scenario:
        kept = {rendered.meta.id for rendered in runbooks.render_runbooks(query.role, query.scenario, params,
                                                                           query.id, library)}
        chosen = [template for template in chosen if template.meta.id in kept]
    summaries = feedback.summaries(get_store(), "runbook")
    return [{**template.meta.model_dump(mode="json"), "feedback": summaries.get(template.meta.id, feedback.EMPTY)}
            for template in chosen]


@bp.route(route="runbooks", methods=["GET"])
@problem_handler
@authenticated
async def get_runbooks(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/runbooks?role=&scenario=&server=&id=`.

    Markdown (default): every runbook (or runbook `id`) with steps for `role` and
    `scenario`, parameterized with server `server`'s real values and the deployment's
    (API and gateway URLs, namespace, resource group), metadata first; 400 naming
    `role`/`scenario` when missing. `Accept: application/json` (without text/markdown):
    `{"items": [metadata + feedback summary]}` of the runbooks for the given filters.
    400 for bad parameters; 403; 404 for an unknown server or id, or when no runbook
    has steps for the role and scenario.
    """
    query = _query(req)
    server = check_server(principal, Permission.SERVER_READ, query.server) if query.server else None
    if server is None:
        check(principal, Permission.SERVER_READ, entity="runbooks")
    library = runbooks.load_library()
    if query.id and query.id not in library:
        raise NotFoundError(f"runbook '{query.id}' not found")
    params = runbooks.runbook_params(get_settings(), server)
    if _wants_json(req):
        return json_response({"items": _listing(library, query, params)})
    role, scenario = query.role, query.scenario
    if role is None or scenario is None:
        raise BadRequestError("name a role and a scenario", errors=[
            {"field": name, "message": "required for a Markdown runbook"}
            for name, value in (("role", role), ("scenario", scenario)) if value is None])
    rendered = runbooks.render_runbooks(role, scenario, params, query.id, library)
    if not rendered:
        raise NotFoundError(f"no runbook has steps for role '{role.value}' and scenario "
                            f"'{scenario.value}'" + (f" on a {params.server.kind} server" if server else ""))
    text = "\n---\n\n".join(runbook.markdown for runbook in rendered)
    return func.HttpResponse(text, status_code=200, mimetype=MARKDOWN, charset="utf-8")
