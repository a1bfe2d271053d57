"""HTTP triggers of the best-practice checklist (FR-012): `GET/PATCH /api/servers/{name}/checklist`.

Thin like `triggers.http_api`: authenticate and authorize (`triggers.security`),
bring the checklist up to date (`shared.checklists.sync`), audit every change, answer.
Automatic flips are audited as done by ``mcpaas-platform`` (the platform observed the
state change; the caller whose request observed it is named in the detail); manual
marks as done by the caller.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from shared import checklists
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.settings import get_settings
from shared.store import get_store
from triggers.http_api import parse_body
from triggers.problems import json_response, problem_handler
from triggers.security import authenticated, check_server, record_decision

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

PLATFORM_ACTOR = "mcpaas-platform"


def _audit(name: str, principal: Principal, changes: list[checklists.Change]) -> None:
    for change in changes:
        if change.automatic:
            record_decision(PLATFORM_ACTOR, "checklist.flip", name, "succeeded",
                            f"{change.item}: {change.detail} (observed for {principal.subject})",
                            diff={change.item: {"from": change.before, "to": change.after}})
        else:
            record_decision(principal, "checklist.mark", name, "succeeded",
                            f"{change.item}: {change.detail}" if change.detail else change.item,
                            diff={change.item: {"from": change.before, "to": change.after}})


@bp.route(route="servers/{name}/checklist", methods=["GET"])
@problem_handler
@authenticated
async def get_checklist(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/servers/{name}/checklist` → `{server, score, checked, total, updated_at, items}`
    with automatic items re-evaluated now (flips audited); 403; 404 for an unknown server."""
    name = req.route_params["name"]
    server = check_server(principal, Permission.SERVER_READ, name)
    store = get_store()
    doc, changes = checklists.sync(store, checklists.facts_for(store, server, get_settings()))
    _audit(name, principal, changes)
    return json_response(checklists.view(server, doc))


@bp.route(route="servers/{name}/checklist", methods=["PATCH"])
@problem_handler
@authenticated
async def patch_checklist(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`PATCH /api/servers/{name}/checklist` `{"items": [{"id", "checked", "note"?}, ...]}` marks
    manual items → the checklist. Needs server.update on the server (403, audited); 400
    listing each unknown or automatic item; 404; 409 after repeated concurrent writes."""
    name = req.route_params["name"]
    patch = parse_body(req, checklists.ChecklistPatch, "checklist marks")
    server = check_server(principal, Permission.SERVER_UPDATE, name)
    checklists.validate_marks(server, patch)
    store = get_store()
    doc, changes = checklists.sync(store, checklists.facts_for(store, server, get_settings()), patch.items,
                                   principal.subject)
    _audit(name, principal, changes)
    return json_response(checklists.view(server, doc))
