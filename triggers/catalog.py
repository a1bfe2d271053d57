"""HTTP triggers of the server catalog (UC7, FR-007; `shared.catalog`): `GET /api/catalog`
and `GET /api/catalog/{name}`. Read-only: entries come from the curated `catalog/` folder
and the platform's imports (`<data dir>/catalog`)."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from shared import catalog
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.errors import BadRequestError
from shared.settings import get_settings
from triggers.problems import json_response, problem_handler
from triggers.security import authenticated, check

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)
MAX_QUERY = 200


@bp.route(route="catalog", methods=["GET"])
@problem_handler
@authenticated
async def list_catalog(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/catalog[?q=words]` → `{"items": [summary]}` by name: every entry, or those
    whose name, title, description or tags contain every word of `q` (case-insensitive).
    A summary has name, title, description, version, license, repository, last_updated,
    transport, kind, env, secrets (names), tags, session_mode, core, source. 400 for a
    `q` longer than 200 characters; 403 without `server.read`."""
    check(principal, Permission.SERVER_READ, entity="catalog")
    query = req.params.get("q", "")
    if len(query) > MAX_QUERY:
        raise BadRequestError(f"q is longer than {MAX_QUERY} characters",
                              errors=[{"field": "q", "message": f"at most {MAX_QUERY} characters"}])
    entries = catalog.load_catalog(catalog.catalog_dirs(get_settings().data_dir))
    return json_response({"items": [entry.summary() for entry in entries if entry.matches(query)]})


@bp.route(route="catalog/{name}", methods=["GET"])
@problem_handler
@authenticated
async def get_catalog_entry(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/catalog/{name}` → the entry's summary plus `spec` (a ready ServerSpec)
    and `server_json` (the entry as an MCP registry server.json). 404 for an unknown name."""
    check(principal, Permission.SERVER_READ, entity="catalog")
    entries = catalog.load_catalog(catalog.catalog_dirs(get_settings().data_dir))
    return json_response(catalog.find(entries, req.route_params["name"]).detail())
