"""`mcpaas catalog install` input handling (issue 13 item 3): what is asked, what is refused
before anything is sent. The deploy itself: tests/e2e/test_catalog.py."""

from __future__ import annotations

import json

import httpx
import pytest

ENTRY = {"name": "gh",
         "spec": {"name": "gh", "kind": "package", "package": {"command": "npx", "args": ["-y", "x-mcp"]}},
         "env": [{"name": "REGION", "description": "", "required": True, "default": None},
                 {"name": "UNITS", "description": "", "required": False, "default": None}],
         "secrets": [{"name": "TOKEN", "description": "a PAT", "required": True, "default": None}]}
REMOTE = {"name": "rem", "spec": {"name": "rem", "kind": "remote", "remote": {"url": "https://r.example/mcp"}},
          "env": [], "secrets": []}


@pytest.fixture
def seen() -> list[httpx.Request]:
    return []


@pytest.fixture
def transport(seen):
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.startswith("/api/catalog/"):
            entry = {"gh": ENTRY, "rem": REMOTE}[request.url.path.rsplit("/", 1)[-1]]
            return httpx.Response(200, json=entry)
        if request.method == "GET":  # the existence check of the deploy
            return httpx.Response(404, json={"title": "Not Found", "status": 404})
        body = json.loads(request.content)
        return httpx.Response(202, json={"server": {"name": body["name"], "latest_revision": 1},
                                         "operation_id": "op-1"})
    return httpx.MockTransport(handle)


def test_required_settings_and_secrets_are_prompted_and_secrets_sent_as_values(invoke, transport, seen):
    result = invoke("catalog", "install", "gh", "--as", "mine", "--no-wait", "-o", "json",
                    input="eu\nghp_secret\n", transport=transport)
    assert result.exit_code == 0, result.output
    posted = json.loads(next(r for r in seen if r.method == "POST").content)
    assert posted["name"] == "mine" and posted["package"]["env"] == {"REGION": "eu"}  # optional UNITS not asked
    assert posted["package"]["secrets"] == {"TOKEN": {"value": "ghp_secret"}}
    assert "ghp_secret" not in result.stdout + result.stderr  # hidden input, never echoed


def test_flags_answer_without_prompting(invoke, transport, seen):
    result = invoke("catalog", "install", "gh", "--no-wait", "--env", "REGION=us", "--secret", "TOKEN=t",
                    transport=transport)
    assert result.exit_code == 0, result.output
    posted = json.loads(next(r for r in seen if r.method == "POST").content)
    assert posted["package"]["env"] == {"REGION": "us"} and posted["package"]["secrets"]["TOKEN"] == {"value": "t"}


@pytest.mark.parametrize("args", [
    ["gh", "--secret", "NOPE=1", "--env", "REGION=us"],  # not a secret of the entry
    ["gh", "--secret", "TOKEN"],  # not NAME=VALUE
    ["rem", "--secret", "TOKEN=1"],  # a remote takes no secrets
])
def test_bad_answers_are_refused_before_anything_is_sent(invoke, transport, seen, args):
    result = invoke("catalog", "install", *args, "--no-wait", transport=transport)
    assert result.exit_code == 2, result.output
    assert [r.method for r in seen] == ["GET"]  # only the entry was read
