"""HTTP-triggered functions served by devhost with real azure.functions types."""

from __future__ import annotations

from tests.integration.devhost.conftest import Devhost

PROBLEM = "application/problem+json"


def test_route_params_constraints_optional_segment_and_query(devhost: Devhost) -> None:
    resp = devhost.client.get("/api/hello/Ada", params={"x": "42"})
    assert resp.status_code == 200
    assert resp.text == "hello Ada 42"
    assert resp.headers["x-sample"] == "1"
    assert resp.headers["content-type"].startswith("text/plain")
    assert devhost.client.get("/api/hello/Ada/hi").text == "hi Ada "


def test_alpha_constraint_rejects_digits(devhost: Devhost) -> None:
    resp = devhost.client.get("/api/hello/123")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM


def test_async_function_gets_body_and_sets_status_and_mimetype(devhost: Devhost) -> None:
    resp = devhost.client.put("/api/echo", content=b"\x00binary\xff")
    assert resp.status_code == 201
    assert resp.content == b"\x00binary\xff"
    assert resp.headers["content-type"].startswith("application/octet-stream")


def test_unknown_route_is_problem_json(devhost: Devhost) -> None:
    resp = devhost.client.get("/api/nothing/here")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["type"] == "about:blank" and body["title"] == "Not Found"
    assert body["status"] == 404 and "/api/nothing/here" in body["detail"]
    assert devhost.client.get("/elsewhere").headers["content-type"] == PROBLEM


def test_wrong_method_is_405(devhost: Devhost) -> None:
    resp = devhost.client.get("/api/echo")
    assert resp.status_code == 405
    assert set(resp.headers["allow"].split(", ")) == {"POST", "PUT"}


def test_exception_in_user_code_is_500_problem(devhost: Devhost) -> None:
    resp = devhost.client.get("/api/boom")
    assert resp.status_code == 500
    assert resp.headers["content-type"] == PROBLEM
    assert "kaboom" not in resp.text  # no internals leak to the caller


def test_oversized_body_is_413(devhost: Devhost) -> None:
    resp = devhost.client.post("/api/echo", content=b"x" * 5000)
    assert resp.status_code == 413
    assert resp.json()["status"] == 413
    chunked = devhost.client.post("/api/echo", content=iter([b"x" * 3000, b"y" * 3000]))
    assert chunked.status_code == 413
