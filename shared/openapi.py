"""The OpenAPI 3.1 document of the control-plane REST API, built from the pydantic models.

Served at `/api/openapi.json` (issue 4, item 8). Schemas come from the same models
the triggers validate with, so the document cannot drift from the validation.
https://spec.openapis.org/oas/v3.1.0
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.models import Revision, Server, ServerSpec

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


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_ACCEPTED = {"description": "accepted; Location names the operation",
             "headers": {"Location": {"schema": {"type": "string"}}},
             "content": {"application/json": {"schema": {"type": "object", "required": ["server", "operation_id"],
                                                         "properties": {"server": {"$ref": "#/components/schemas/Server"},
                                                                        "operation_id": {"type": "string"}}}}}}


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document as a JSON-ready dict."""
    spec_body = {"required": True, **_json("ServerSpecInput")}
    paths = {
        "/api/servers": {
            "get": {"operationId": "listServers", "responses": {"200": {"description": "servers", **_items("Server")}}},
            "post": {"operationId": "createServer", "requestBody": spec_body,
                     "responses": {"202": _ACCEPTED, **_problems(400, 409, 422)}},
        },
        "/api/servers/{name}": {
            "parameters": [_NAME],
            "get": {"operationId": "getServer",
                    "responses": {"200": {"description": "server", **_json("Server")}, **_problems(404)}},
            "put": {"operationId": "updateServer", "requestBody": spec_body,
                    "responses": {"202": _ACCEPTED, **_problems(400, 404, 409, 422)}},
            "delete": {"operationId": "deleteServer", "responses": {"202": _ACCEPTED, **_problems(404, 409)}},
        },
        "/api/servers/{name}/revisions": {
            "parameters": [_NAME],
            "get": {"operationId": "listRevisions",
                    "responses": {"200": {"description": "revisions, newest first", **_items("Revision")},
                                  **_problems(404)}},
        },
        "/api/operations/{operation_id}": {
            "parameters": [{"name": "operation_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"operationId": "getOperation",
                    "responses": {"200": {"description": "orchestration status",
                                          "content": {"application/json": {"schema": {"type": "object"}}}},
                                  **_problems(404)}},
        },
    }
    return {"openapi": "3.1.0",
            "info": {"title": "MCPaaS control plane", "version": "0.1.0"},
            "servers": [{"url": server_url}],
            "paths": paths,
            "components": {"schemas": _schemas(Server, Revision)}}
