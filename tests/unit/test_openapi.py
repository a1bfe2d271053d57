"""The OpenAPI document (`shared.openapi`) names every REST route the triggers serve,
and only those: a route added without its documentation fails here, before the
schemathesis fuzz (tests/e2e/test_openapi_fuzz.py) could not reach it."""

from __future__ import annotations

import ast
from pathlib import Path

from shared.openapi import openapi_document

TRIGGERS = Path(__file__).resolve().parents[2] / "triggers"


def served_routes() -> set[tuple[str, str]]:
    """(path, method) of every `@bp.route(route=..., methods=[...])` under triggers/."""
    found = set()
    for path in TRIGGERS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "route":
                args = {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
                found.update((f"/api/{args['route']}", method.lower()) for method in args["methods"])
    return found


def test_every_served_route_is_documented_and_nothing_else():
    paths = openapi_document()["paths"]
    documented = {(path, method) for path, item in paths.items() for method in item if method != "parameters"}
    assert ("/api/feedback", "post") in served_routes()  # the scan sees the triggers
    assert documented == served_routes()


def test_bodies_and_answers_refer_to_defined_schemas():
    document = openapi_document()
    schemas = document["components"]["schemas"]
    refs = set()

    def collect(value):
        if isinstance(value, dict):
            refs.update([value["$ref"]] if isinstance(value.get("$ref"), str) else [])
            for child in value.values():
                collect(child)
        elif isinstance(value, list):
            for child in value:
                collect(child)

    collect(document)
    assert {ref.rsplit("/", 1)[1] for ref in refs} <= set(schemas)
    restore = document["paths"]["/api/apim/restore"]["post"]
    assert restore["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/RestoreRequest")
    assert schemas["FeedbackRequest"]["properties"]["rating"] == {"maximum": 5, "minimum": 1, "title": "Rating",
                                                                  "type": "integer"}
