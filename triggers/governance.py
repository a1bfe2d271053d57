"""HTTP triggers of governance: sharing (FR-018), API keys, the audit trail (FR-005), the
invocation audit (FR-022, docs/audit.md) and the OpenAPI document.

Thin like `triggers.http_api`: authenticate and authorize (`triggers.security`), one
store read or write, answer. Every change is audited with the caller's subject.
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urljoin

import azure.durable_functions as df
import azure.functions as func

from shared import audit
from shared.auth import api_keys
from shared.auth.factory import authenticator_from_settings
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.errors import BadRequestError, MCPaaSError
from shared.models import ShareList, utc_now
from shared.openapi import openapi_document
from shared.settings import get_settings
from shared.store import get_store
from triggers.http_api import parse_body
from triggers.paging import page_params, page_response
from triggers.problems import json_response, problem_handler
from triggers.security import authenticated, check_invocations, check_server, record_decision, requires

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)


class PreconditionFailedError(MCPaaSError):
    """`If-Match` names a version that is no longer current (RFC 9110 §13.1.1)."""

    status = 412
    title = "Precondition Failed"


@bp.route(route="servers/{name}/shares", methods=["GET"])
@problem_handler
@authenticated
async def get_shares(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/servers/{name}/shares` → `{"items": [Share, ...]}` with the server's `ETag`; 404 if absent."""
    name = req.route_params["name"]
    server = check_server(principal, Permission.SERVER_READ, name)
    doc = get_store().read("servers", name, name)
    return json_response(ShareList(items=server.shares).model_dump(mode="json"), headers={"ETag": doc["_etag"]})


@bp.route(route="servers/{name}/shares", methods=["PUT"])
@problem_handler
@authenticated
async def put_shares(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`PUT /api/servers/{name}/shares` `{"items": [Share, ...]}` replaces every grant → the new list.

    Optional `If-Match` (the `ETag` of a GET): 412 when the server changed since. 400 for
    a bad body, 403 without shares.manage on the server, 404, 409 on a concurrent write.
    """
    name = req.route_params["name"]
    body = parse_body(req, ShareList, "share list")
    check_server(principal, Permission.SHARES_MANAGE, name)
    store = get_store()
    doc = store.read("servers", name, name)
    expected = req.headers.get("If-Match")
    if expected and expected.strip('"') != doc["_etag"].strip('"'):
        raise PreconditionFailedError(f"server '{name}' changed since version {expected}")
    before = doc.get("shares", [])
    updated = {**{key: value for key, value in doc.items() if key != "_etag"},
               "shares": body.model_dump(mode="json")["items"], "updated_at": utc_now().isoformat()}
    stored = store.replace("servers", updated, if_match=doc["_etag"])
    record_decision(principal, "shares.update", name, "succeeded",
                    f"{len(before)} grant(s) replaced by {len(body.items)}",
                    diff={"shares": {"from": before, "to": updated["shares"]}})
    return json_response(body.model_dump(mode="json"), headers={"ETag": stored["_etag"]})


@bp.route(route="keys", methods=["POST"])
@problem_handler
@requires(Permission.KEYS_MANAGE)
async def create_key(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`POST /api/keys` (ApiKeyRequest) → 201 `{"key": plaintext, "record": ApiKey}`; the key is shown only here."""
    request = parse_body(req, api_keys.ApiKeyRequest, "API key request")
    if request.expires_at is not None and request.expires_at.tzinfo is None:
        request.expires_at = request.expires_at.replace(tzinfo=timezone.utc)
    plaintext, record = api_keys.create_key(get_store(), name=request.name, roles=request.roles,
                                            created_by=principal.subject, servers=request.servers,
                                            expires_at=request.expires_at)
    # the record never holds the key (only its hash lives apart), so it is safe to audit
    record_decision(principal, "keys.create", f"key:{record.id}", "succeeded", f"roles {sorted(request.roles)}",
                    diff={"key": {"from": None, "to": record.model_dump(mode="json")}})
    location = urljoin(req.url, f"/api/keys/{record.id}")
    return json_response({"key": plaintext, "record": record.model_dump(mode="json")}, status=201,
                         headers={"Location": location})


@bp.route(route="keys", methods=["GET"])
@problem_handler
@requires(Permission.KEYS_MANAGE)
async def list_keys(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/keys` → `{"items": [ApiKey, ...]}` newest first (records only, never secrets)."""
    return json_response({"items": [key.model_dump(mode="json") for key in api_keys.list_keys(get_store())]})


@bp.route(route="keys/{key_id}", methods=["DELETE"])
@problem_handler
@requires(Permission.KEYS_MANAGE)
async def revoke_key(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`DELETE /api/keys/{id}` revokes the key → the revoked ApiKey; 404 for an unknown id."""
    key_id = req.route_params["key_id"]
    record = api_keys.revoke_key(get_store(), key_id)
    # this process stops trusting the key at once; others within auth_api_key_cache_seconds
    authenticator_from_settings(get_settings(), get_store()).forget(f"key:{key_id}")
    record_decision(principal, "keys.revoke", f"key:{key_id}", "succeeded", "revoked",
                    diff={"revoked": {"from": False, "to": record.revoked}})
    return json_response(record.model_dump(mode="json"))


def time_param(req: func.HttpRequest, name: str) -> datetime | None:
    """Query parameter `name` as a timezone-aware time (naive means UTC); None when
    absent. Raises BadRequestError (400) for text that is not ISO-8601."""
    text = req.params.get(name)
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(f"bad query parameter {name}",
                              errors=[{"field": name, "message": "expected an ISO-8601 time"}]) from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


# page sizes of the audit routes (docs/audit.md, docs/paging.md)
AUDIT_DEFAULT_LIMIT = 50


def _public(items: list[dict]) -> list[dict]:
    return [{key: value for key, value in item.items() if not key.startswith("_")} for item in items]


@bp.route(route="audit", methods=["GET"])
@problem_handler
@requires(Permission.AUDIT_READ)
async def list_audit(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/audit?actor=&server=&action=&since=&until=&limit=&continuationToken=`
    → `{"items": [...], "continuationToken", "next"}`.

    Newest first, one page (default 50, at most 500; docs/paging.md); `next` repeats the
    token for clients of the earlier `cursor` parameter, still accepted. 400 for a bad
    time, limit or token.
    """
    limit, token = page_params(req, default=AUDIT_DEFAULT_LIMIT, maximum=audit.MAX_PAGE, legacy_cursor=True)
    items, next_token = audit.query_audit(
        get_store(), actor=req.params.get("actor") or None, entity=req.params.get("server") or None,
        action=req.params.get("action") or None, since=time_param(req, "since"),
        until=time_param(req, "until"), limit=limit, continuation=token)
    return page_response(_public(items), next_token, next=next_token)


@bp.route(route="audit/invocations", methods=["GET"])
@problem_handler
@authenticated
async def list_invocations(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/audit/invocations?server=&tool=&actor=&result=&since=&until=&limit=&continuationToken=`
    → `{"items": [invocation, ...], "continuationToken", "next"}`: who called what (FR-022, 004 G5).

    Newest first, one page (default 50, at most 500); `since`/`until` inclusive ISO-8601
    times; `next`/`cursor` as for `/api/audit`.
    Operators and Admins read every server; others need `server=` naming a server their
    team owns or that is shared with them for invocations.read (`check_invocations`).
    400 for a bad time, limit or token; 403 (audited); 404 for an unknown server.
    """
    server = req.params.get("server") or None
    check_invocations(principal, server)
    limit, token = page_params(req, default=AUDIT_DEFAULT_LIMIT, maximum=audit.MAX_PAGE, legacy_cursor=True)
    items, next_token = audit.query_invocations(
        get_store(), server=server, tool=req.params.get("tool") or None,
        actor=req.params.get("actor") or None, result=req.params.get("result") or None,
        since=time_param(req, "since"), until=time_param(req, "until"), limit=limit, continuation=token)
    return page_response(_public(items), next_token, next=next_token)


@bp.route(route="openapi.json", methods=["GET"])
@problem_handler
async def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/openapi.json` → the OpenAPI 3.1 document of this API (anonymous)."""
    return json_response(openapi_document(urljoin(req.url, "/")))
