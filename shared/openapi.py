"""The OpenAPI 3.1 document of the control-plane REST API, built from the pydantic models.

Served at `/api/openapi.json` (issue 4, item 8). Schemas come from the same models
the triggers validate with, so the document cannot drift from the validation.
https://spec.openapis.org/oas/v3.1.0
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.apim import RestoreRequest
from shared.checklists import ChecklistPatch
from shared.feedback import Feedback, FeedbackRequest, FeedbackStatusChange
from shared.freshness import Finding
from shared.models import AuditEvent, ControlPlaneSpec, Revision, RollbackRequest, Server, ServerSpec, ShareList
from shared.runbooks import RunbookRole, Scenario

_REF = "#/components/schemas/{model}"
_PROBLEM = {"type": "object", "required": ["type", "title", "status"],
            "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                           "status": {"type": "integer"}, "detail": {"type": "string"},
                           "instance": {"type": "string"},
                           "errors": {"type": "array", "items": {"type": "object", "properties": {
                               "field": {"type": "string"}, "message": {"type": "string"}}}}}}


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["ServerSpecInput"] = ServerSpec.model_json_schema(ref_template=_REF, mode="validation")
    schemas["ServerSpecInput"].pop("$defs", None)
    schemas["Problem"] = _PROBLEM
    schemas["Invocation"] = _INVOCATION
    return schemas


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _problems(*codes: int) -> dict[str, Any]:
    problem = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    return {str(code): {"description": "problem details (RFC 9457)", **problem} for code in codes}


def _items(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {
        "type": "object", "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}}}}}}}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or {"type": "string"}}


def _page(ref: str, default: int = 100, *legacy: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The 200 response and the query parameters of a paged list of `ref` (docs/paging.md);
    `legacy` names earlier aliases kept in the answer (`next`)."""
    token = {"type": ["string", "null"], "description": "opaque; null on the last page"}
    response = _object(["items", "continuationToken", *legacy],
                       items={"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}},
                       continuationToken=token, **dict.fromkeys(legacy, token))
    response["description"] = "one page; a page may hold fewer than limit items while continuationToken is set"
    params = [_param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": default}),
              _param("continuationToken", "query", {"type": "string", "maxLength": 4096})]
    return response, params


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"description": "ok", "content": {"application/json": {"schema": {
        "type": "object", "required": required, "properties": properties}}}}


def _op(operation_id: str, responses: dict[str, Any], *, body: str | None = None, params: list | None = None,
        problems: tuple[int, ...] = (), anonymous: bool = False) -> dict[str, Any]:
    """One operation; authenticated ones also answer 401 and 403 (RFC 9457 problems)."""
    operation: dict[str, Any] = {"operationId": operation_id,
                                 "responses": {**responses, **_problems(*problems, *(() if anonymous else (401, 403)))}}
    if body:
        operation["requestBody"] = {"required": True, **_json(body)}
    if params:
        operation["parameters"] = params
    if anonymous:
        operation["security"] = []
    return operation


_NAME = _param("name")
_REF_SERVER = {"$ref": "#/components/schemas/Server"}
_ACCEPTED = {"description": "accepted; Location names the operation",
             "headers": {"Location": {"schema": {"type": "string"}}},
             **{key: value for key, value in _object(["server", "operation_id"], server=_REF_SERVER,
                                                      operation_id={"type": "string"}).items()
                if key == "content"}}
_ETAG = {"ETag": {"schema": {"type": "string"}}}
# `cursor`: the earlier name of continuationToken, still accepted
_CURSOR = {**_param("cursor", "query", {"type": "string", "maxLength": 4096}), "deprecated": True}
_AUDIT_PARAMS = [_param(name, "query") for name in ("actor", "server", "action")] + [
    _param(name, "query", {"type": "string", "format": "date-time"}) for name in ("since", "until")] + [_CURSOR]
_INVOCATION_PARAMS = [_param(name, "query") for name in ("server", "tool", "actor", "result")] + [
    _param(name, "query", {"type": "string", "format": "date-time"}) for name in ("since", "until")] + [_CURSOR]
# one `invocations` document (shared.audit.invocation)
_INVOCATION = {"type": "object", "required": ["id", "server", "actor", "method", "result", "time"],
               "properties": {"id": {"type": "string"}, "server": {"type": "string"},
                              "actor": {"type": "string"}, "method": {"type": "string"},
                              "tool": {"type": ["string", "null"]}, "latency_ms": {"type": "number"},
                              "result": {"type": "string"}, "trace_id": {"type": "string"},
                              "time": {"type": "string", "format": "date-time"}}}
_SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                "description": "Entra ID or local access token, or an API key (mcpk_...)"},
                     "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}


def _server_paths() -> dict[str, Any]:
    servers, server_params = _page("Server")
    revisions, revision_params = _page("Revision")
    return {
        "/api/servers": {
            "get": _op("listServers", {"200": servers}, params=server_params, problems=(400,)),
            "post": _op("createServer", {"202": _ACCEPTED}, body="ServerSpecInput", problems=(400, 409, 422)),
        },
        "/api/servers/{name}": {
            "parameters": [_NAME],
            "get": _op("getServer", {"200": {"description": "server", **_json("Server")}}, problems=(404,)),
            "put": _op("updateServer", {"202": _ACCEPTED}, body="ServerSpecInput", problems=(400, 404, 409, 422)),
            "delete": _op("deleteServer", {"202": _ACCEPTED}, problems=(404, 409)),
        },
        "/api/servers/{name}/revisions": {
            "parameters": [_NAME],
            "get": _op("listRevisions", {"200": revisions}, params=revision_params, problems=(400, 404))},
        "/api/servers/{name}/rollback": {
            "parameters": [_NAME],
            "post": _op("rollbackServer", {"202": _ACCEPTED}, body="RollbackRequest", problems=(400, 404, 409, 422))},
        "/api/servers/{name}/logs": {
            "parameters": [_NAME],
            "get": _op("serverLogs", {"200": _object(["name", "lines"], name={"type": "string"},
                                                     lines={"type": "array", "items": {"type": "string"}})},
                       params=[_param("tail", "query", {"type": "integer", "minimum": 1, "maximum": 10000}),
                               _param("since", "query", {"type": "string", "format": "date-time"})],
                       problems=(400, 404, 502))},
        "/api/servers/{name}/events": {
            "parameters": [_NAME],
            "get": _op("serverEvents", {"200": _object(["name", "items"], name={"type": "string"},
                                                       items={"type": "array", "items": {"type": "object"}})},
                       params=[_param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500})],
                       problems=(400, 404, 422, 502))},
        "/api/servers/{name}/shares": {
            "parameters": [_NAME],
            "get": _op("getShares", {"200": {"description": "grants", "headers": _ETAG, **_json("ShareList")}},
                       problems=(404,)),
            "put": _op("putShares", {"200": {"description": "grants", "headers": _ETAG, **_json("ShareList")}},
                       body="ShareList", params=[_param("If-Match", "header")], problems=(400, 404, 409, 412))},
    }


def _governance_paths() -> dict[str, Any]:
    audit_page, audit_params = _page("AuditEvent", 50, "next")
    invocation_page, invocation_params = _page("Invocation", 50, "next")
    return {
        "/api/operations/{operation_id}": {
            "parameters": [_param("operation_id")],
            "get": _op("getOperation", {"200": {"description": "orchestration status",
                                               "content": {"application/json": {"schema": {"type": "object"}}}}},
                       problems=(404,))},
        "/api/controlplane": {
            "post": _op("provisionControlPlane", {"202": _object(["operation_id"], operation_id={"type": "string"})},
                        body="ControlPlaneSpec", problems=(400,))},
        "/api/keys": {
            "get": _op("listKeys", {"200": {"description": "keys, never their secrets", **_items("ApiKey")}}),
            "post": _op("createKey", {"201": _object(["key", "record"], key={"type": "string"},
                                                     record={"$ref": "#/components/schemas/ApiKey"})},
                        body="ApiKeyRequest", problems=(400,))},
        "/api/keys/{key_id}": {
            "parameters": [_param("key_id")],
            "delete": _op("revokeKey", {"200": {"description": "revoked key", **_json("ApiKey")}}, problems=(404,))},
        "/api/audit": {
            "get": _op("listAudit", {"200": audit_page}, params=_AUDIT_PARAMS + audit_params, problems=(400,))},
        "/api/audit/invocations": {
            "get": _op("listInvocations", {"200": invocation_page}, params=_INVOCATION_PARAMS + invocation_params,
                       problems=(400, 404))},
        "/api/openapi.json": {
            "get": _op("openapi", {"200": {"description": "this document",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}},
                       anonymous=True)},
    }


_COST_ROW = {"type": "object", "required": ["calls", "input_tokens", "output_tokens", "total_tokens"],
             "additionalProperties": {"type": ["string", "number"]}}
_COST_PARAMS = [_param("group_by", "query"), *(_param(name, "query") for name in ("server", "actor", "tool", "model")),
                *(_param(name, "query", {"type": "string", "format": "date-time"}) for name in ("since", "until"))]
_ANY_OBJECTS = {"type": "array", "items": {"type": "object"}}


def _cost_paths() -> dict[str, Any]:
    """`/api/costs` (FR-026) and `/api/quota*` (FR-028): docs/costs-and-quota.md."""
    costs = _object(["group_by", "since", "until", "items"], group_by={"type": "array", "items": {"type": "string"}},
                    since={"type": "string"}, until={"type": "string"},
                    items={"type": "array", "items": _COST_ROW})
    costs["content"]["text/csv"] = {"schema": {"type": "string"}}
    return {
        "/api/costs": {"get": _op("getCosts", {"200": costs}, params=_COST_PARAMS, problems=(400, 404))},
        "/api/quota": {"get": _op("getQuota", {"200": _object(
            ["threshold", "window_seconds", "bucket_seconds", "items"], threshold={"type": "number"},
            window_seconds={"type": "integer"}, bucket_seconds={"type": "integer"}, items=_ANY_OBJECTS)})},
        "/api/quota/advisories": {"get": _op("listQuotaAdvisories", {"200": _object(["items"], items=_ANY_OBJECTS)},
                                             params=[_param("state", "query", {"enum": ["open", "cleared"]}),
                                                     _param("deployment", "query")], problems=(400,))},
    }


_SERVER_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}
_CHECKLIST = {"type": "object", "required": ["server", "score", "checked", "total", "items"],
              "properties": {"server": {"type": "string"}, "score": {"type": "number"},
                             "checked": {"type": "integer"}, "total": {"type": "integer"},
                             "updated_at": {"type": ["string", "null"]},
                             "items": {"type": "array", "items": {"type": "object", "required": [
                                 "id", "title", "category", "reference", "automatic", "checked"]}}}}
_RUNBOOK_PARAMS = [_param("role", "query", {"type": "string", "enum": [role.value for role in RunbookRole]}),
                   _param("scenario", "query", {"type": "string", "enum": [item.value for item in Scenario]}),
                   _param("server", "query", _SERVER_NAME),
                   _param("id", "query", {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$", "maxLength": 80})]
_FEEDBACK_PARAMS = [_param("artifact_kind", "query", {"type": "string", "enum": ["runbook", "template", "catalog"]}),
                    _param("artifact_id", "query", {"type": "string", "maxLength": 200}),
                    _param("status", "query", {"type": "string", "enum": ["new", "triaged", "resolved"]}),
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500})]


def _guidance_paths() -> dict[str, Any]:
    """Runbooks (FR-009, FR-010), checklists (FR-012), feedback (FR-011) and the catalog
    (FR-007): docs/runbooks.md, docs/catalog.md."""
    checklist = {"description": "checklist with readiness score",
                 "content": {"application/json": {"schema": _CHECKLIST}}}
    runbooks = {"description": "runbook Markdown, or metadata with Accept: application/json",
                "content": {"text/markdown": {"schema": {"type": "string"}},
                            **_object(["items"], items=_ANY_OBJECTS)["content"]}}
    return {
        "/api/runbooks": {"get": _op("getRunbooks", {"200": runbooks}, params=_RUNBOOK_PARAMS, problems=(400, 404))},
        "/api/servers/{name}/checklist": {
            "parameters": [_NAME],
            "get": _op("getChecklist", {"200": checklist}, problems=(404,)),
            "patch": _op("markChecklist", {"200": checklist}, body="ChecklistPatch", problems=(400, 404, 409))},
        "/api/feedback": {
            "get": _op("listFeedback", {"200": {"description": "newest first", **_items("Feedback")}},
                       params=_FEEDBACK_PARAMS, problems=(400,)),
            "post": _op("postFeedback", {"201": {"description": "recorded",
                                                 "headers": {"Location": {"schema": {"type": "string"}}},
                                                 **_json("Feedback")}},
                        body="FeedbackRequest", problems=(400, 429))},
        "/api/feedback/{feedback_id}": {
            "parameters": [_param("feedback_id")],
            "patch": _op("setFeedbackStatus", {"200": {"description": "the entry", **_json("Feedback")}},
                         body="FeedbackStatusChange", problems=(400, 404, 409))},
        "/api/catalog": {"get": _op("listCatalog", {"200": _object(["items"], items=_ANY_OBJECTS)},
                                    params=[_param("q", "query", {"type": "string", "maxLength": 200})],
                                    problems=(400,))},
        "/api/catalog/{name}": {
            "parameters": [_param("name")],
            "get": _op("getCatalogEntry", {"200": _object(["name", "spec", "server_json"], name={"type": "string"},
                                                          spec={"type": "object"}, server_json={"type": "object"})},
                       problems=(404,))},
    }


def _operations_paths() -> dict[str, Any]:
    """APIM tier-change restore (FR-027; docs/apim-restore.md) and documentation
    freshness (NFR-OPS-004). The APIM routes answer 422 while no service is configured."""
    restore = {"description": "accepted; Location names the restore operation",
               "headers": {"Location": {"schema": {"type": "string"}}},
               **_object(["operation_id", "snapshot"], operation_id={"type": "string"},
                         snapshot={"type": "string"})}
    snapshots = _object(["service", "items"], service={"type": "string"}, items={"type": "array", "items": {
        "type": "object", "required": ["id", "sku", "taken_at", "items", "warnings", "artifact", "digest"]}})
    freshness = _object(["as_of", "max_age_days", "items"], as_of={"type": "string", "format": "date"},
                        max_age_days={"type": "integer"},
                        items={"type": "array", "items": {"$ref": "#/components/schemas/Finding"}})
    return {
        "/api/apim/restore": {"post": _op("restoreApim", {"202": restore}, body="RestoreRequest",
                                          problems=(400, 404, 422))},
        "/api/apim/snapshots": {"get": _op("listApimSnapshots", {"200": snapshots}, problems=(422,))},
        "/api/freshness": {"get": _op("getFreshness", {"200": freshness}, problems=(400,), params=[
            _param("as_of", "query", {"type": "string", "format": "date"}),
            _param("stale", "query", {"type": "boolean"})])},
    }


def _bundle_paths() -> dict[str, Any]:
    """Code bundle uploads (issue 13 item 2, docs/bundles.md): the body is the tar.gz itself."""
    stored = _object(["bundle", "size", "files"], bundle={"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                     size={"type": "integer"}, files={"type": "integer"})
    upload = _op("uploadBundle", {"201": {**stored, "description": "stored"},
                                  "200": {**stored, "description": "stored already (same digest)"}},
                 problems=(400, 413))
    # the bytes of a tar.gz; any Content-Type is accepted (the archive is checked, not the header)
    upload["requestBody"] = {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}
    return {"/api/bundles": {"post": upload}}


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document as a JSON-ready dict: every `/api` route, its 401/403
    answers, and the bearer (JWT or API key) and `X-API-Key` security schemes."""
    from shared.auth.api_keys import ApiKey, ApiKeyRequest  # shared.auth.api_keys imports shared.models

    schemas = _schemas(Server, Revision, ApiKey, AuditEvent, ShareList, Feedback, Finding)
    for model in (ApiKeyRequest, RollbackRequest, ControlPlaneSpec, ShareList, ChecklistPatch, FeedbackRequest,
                  FeedbackStatusChange, RestoreRequest):
        schema = model.model_json_schema(ref_template=_REF, mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {"openapi": "3.1.0",
            "info": {"title": "MCPaaS control plane", "version": "0.1.0"},
            "servers": [{"url": server_url}],
            "security": [{"bearer": []}, {"apiKey": []}],
            "paths": {**_server_paths(), **_governance_paths(), **_cost_paths(), **_guidance_paths(),
                      **_operations_paths(), **_bundle_paths()},
            "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES}}
