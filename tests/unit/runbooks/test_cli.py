"""`mcpaas runbook` and `mcpaas checklist` against a mock control plane: what is sent, and
how refusals reach the user (the live round trips are in tests/e2e/test_runbooks.py)."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from cli.main import app
from cli.state import CliState


def _run(handler, *args: str):
    state = CliState(api_url="http://cp.test", token="t", transport=httpx.MockTransport(handler))
    return CliRunner().invoke(app, list(args), obj=state)


def test_runbook_asks_for_markdown_with_the_filters_and_prints_it_verbatim():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("Accept") != "text/markdown":
            return httpx.Response(200, json={"items": [{"id": "sre-incident", "title": "Incident", "roles": ["sre"],
                                                        "scenarios": ["incident-response"]}]})
        return httpx.Response(200, text="# Runbook\n```bash\necho [bold]\n```\n",
                              headers={"Content-Type": "text/markdown"})

    result = _run(handler, "runbook", "--role", "sre", "--scenario", "incident-response", "--server", "weather")
    assert result.exit_code == 0 and result.stdout == "# Runbook\n```bash\necho [bold]\n```\n"
    assert seen[0].headers["Accept"] == "text/markdown"
    assert dict(seen[0].url.params) == {"role": "sre", "scenario": "incident-response", "server": "weather"}
    listed = _run(handler, "runbook", "--role", "sre")  # no scenario: the role's runbooks, listed
    assert listed.exit_code == 0 and "sre-incident" in listed.stdout and "echo" not in listed.stdout
    assert dict(seen[1].url.params) == {"role": "sre"} and len(seen) == 2


def test_checklist_marks_are_sent_and_field_errors_shown():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "PATCH" and request.url.path == "/api/servers/weather/checklist"
        assert json.loads(request.read()) == {"items": [{"id": "owner-set", "checked": True, "note": "x"},
                                                        {"id": "licenses-reviewed", "checked": False, "note": "x"}]}
        return httpx.Response(400, json={"title": "Bad Request", "status": 400, "detail": "checklist marks refused",
                                         "errors": [{"field": "items.0.id", "message": "'owner-set' is automatic"}]},
                              headers={"Content-Type": "application/problem+json"})

    result = _run(handler, "checklist", "weather", "--check", "owner-set", "--uncheck", "licenses-reviewed",
                  "--note", "x")
    assert result.exit_code == 1
    assert "checklist marks refused" in result.stderr and "items.0.id" in result.stderr
