"""The guidance routes in process: runbooks, checklists (flips audited) and feedback
(round trip, triage by Operators only, rate limit per identity)."""

from __future__ import annotations

import azure.functions as func

from shared.auth.principal import Role
from shared.models import Server
from tests.unit.runbooks.conftest import body
from triggers import checklists, feedback, runbooks

RUNBOOKS = "/api/runbooks"


async def test_a_runbook_renders_as_markdown_for_a_real_server_and_lists_as_json(api):
    api.add_server("weather", revisions=2)
    reply = await api.call(runbooks.get_runbooks, "GET", RUNBOOKS, roles=(Role.READER,),
                           params={"role": "sre", "scenario": "incident-response", "server": "weather"})
    assert reply.status_code == 200 and reply.mimetype == "text/markdown"
    text = reply.get_body().decode()
    assert "# Roll a server back to an earlier revision" in text and "export SERVER_NAME=weather" in text
    assert 'TARGET_REVISION="${TARGET_REVISION:-1}"' in text and "| 1.0.0 | 2026-12-01 | sre |" in text
    listed = await api.call(runbooks.get_runbooks, "GET", RUNBOOKS, headers={"Accept": "application/json"},
                            params={"role": "developer", "scenario": "first-deploy"})
    items = body(listed)["items"]
    assert {item["id"] for item in items} >= {"deploy-package-server", "harden-server"}
    assert all(item["feedback"] == {"count": 0, "average": 0.0} and item["last_updated"] for item in items)


async def test_runbook_queries_are_validated_and_authorized(api):
    missing = await api.call(runbooks.get_runbooks, "GET", RUNBOOKS, params={"role": "sre"})
    assert missing.status_code == 400 and missing.mimetype == "application/problem+json"
    assert [error["field"] for error in body(missing)["errors"]] == ["scenario"]
    bad = await api.call(runbooks.get_runbooks, "GET", RUNBOOKS,
                         params={"role": "intern", "scenario": "x", "server": "../audit"})
    assert {error["field"] for error in body(bad)["errors"]} == {"role", "scenario", "server"}
    ghost = await api.call(runbooks.get_runbooks, "GET", RUNBOOKS,
                           params={"role": "sre", "scenario": "incident-response", "server": "ghost"})
    assert ghost.status_code == 404
    empty = await api.call(runbooks.get_runbooks, "GET", RUNBOOKS,
                           params={"role": "developer", "scenario": "cost-review"})
    assert empty.status_code == 404
    unknown = await api.call(runbooks.get_runbooks, "GET", RUNBOOKS, params={"id": "nope"})
    assert unknown.status_code == 404
    anonymous = await runbooks.get_runbooks._function.get_user_function()(func.HttpRequest(
        "GET", "http://127.0.0.1:7071/api/runbooks", params={"role": "sre", "scenario": "incident-response"},
        body=b""))
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")


async def test_automatic_items_flip_with_the_state_and_every_flip_is_audited(api):
    api.add_server("weather", revisions=1, env={"GITHUB_TOKEN": "ghp_do-not-leak", "REGION": "eu"})
    route = {"name": "weather"}
    first = body(await api.call(checklists.get_checklist, "GET", "/api/servers/weather/checklist", route=route,
                                roles=(Role.READER,)))
    items = {item["id"]: item for item in first["items"]}
    assert items["owner-set"]["checked"] and items["auth-on"]["checked"] and items["rate-limit-set"]["checked"]
    assert not items["rollback-target"]["checked"] and not items["secrets-not-in-env"]["checked"]
    assert "package.env.GITHUB_TOKEN" in items["secrets-not-in-env"]["detail"]
    assert "ghp_do-not-leak" not in str(first) and "REGION" not in items["secrets-not-in-env"]["detail"]
    assert "probes-and-resources" not in items  # a container-only item
    assert first["score"] == round(first["checked"] / first["total"], 3) and first["total"] == 10
    # the owner is removed and a second revision lands: two flips, each audited once
    server = Server.model_validate(api.store.read("servers", "weather", "weather"))
    server.spec.owner_team = ""
    api.store.upsert("servers", server.model_dump(mode="json") | {"id": "weather"})
    api.add_server("weather", revisions=2, owner_team="", env={"GITHUB_TOKEN": "ghp_do-not-leak"})
    second = body(await api.call(checklists.get_checklist, "GET", "/api/servers/weather/checklist", route=route))
    items = {item["id"]: item for item in second["items"]}
    assert not items["owner-set"]["checked"] and items["rollback-target"]["checked"]
    flips = [event for event in api.audit("checklist.flip") if set(event["diff"]) & {"owner-set", "rollback-target"}]
    assert [(event["actor"], event["diff"]) for event in flips[-2:]] == [
        ("mcpaas-platform", {"owner-set": {"from": True, "to": False}}),
        ("mcpaas-platform", {"rollback-target": {"from": False, "to": True}})]
    flipped = len(api.audit("checklist.flip"))
    again = await api.call(checklists.get_checklist, "GET", "/api/servers/weather/checklist", route=route)
    assert body(again)["score"] == second["score"] and len(api.audit("checklist.flip")) == flipped  # no change
    assert all("ghp_do-not-leak" not in str(event) for event in api.store.query("audit"))


async def test_manual_marks_need_update_rights_name_bad_items_and_are_audited(api):
    api.add_server("weather")
    route, url = {"name": "weather"}, "/api/servers/weather/checklist"
    marks = {"items": [{"id": "data-classified", "checked": True, "note": "public data only"}]}
    denied = await api.call(checklists.patch_checklist, "PATCH", url, route=route, body=marks, roles=(Role.READER,))
    assert denied.status_code == 403
    other_team = await api.call(checklists.patch_checklist, "PATCH", url, route=route, body=marks,
                                roles=(Role.DEVELOPER,), groups=("blue",))
    assert other_team.status_code == 403
    bad = await api.call(checklists.patch_checklist, "PATCH", url, route=route, body={"items": [
        {"id": "owner-set", "checked": False}, {"id": "probes-and-resources", "checked": True},
        {"id": "nope", "checked": True}]}, roles=(Role.DEVELOPER,), groups=("shop",))
    assert bad.status_code == 400
    assert [error["field"] for error in body(bad)["errors"]] == ["items.0.id", "items.1.id", "items.2.id"]
    assert "automatic" in body(bad)["errors"][0]["message"]
    done = await api.call(checklists.patch_checklist, "PATCH", url, route=route, body=marks,
                          roles=(Role.DEVELOPER,), groups=("shop",), user="dev1")
    item = next(item for item in body(done)["items"] if item["id"] == "data-classified")
    assert item["checked"] and item["by"] == "dev1" and item["note"] == "public data only"
    [event] = api.audit("checklist.mark")
    assert event["actor"] == "dev1" and event["diff"] == {"data-classified": {"from": None, "to": True}}
    malformed = await api.call(checklists.patch_checklist, "PATCH", url, route=route, body={"items": "x"})
    assert malformed.status_code == 400 and body(malformed)["errors"][0]["field"] == "items"


async def test_feedback_round_trip_triage_by_operators_only(api):
    entry = {"artifact_kind": "runbook", "artifact_id": "rollback-server", "rating": 4, "text": "step 2 unclear"}
    posted = await api.call(feedback.post_feedback, "POST", "/api/feedback", body=entry, roles=(Role.READER,),
                            user="rita")
    assert posted.status_code == 201, posted.get_body()
    created = body(posted)
    assert created["author"] == "rita" and created["status"] == "new" and created["rating"] == 4
    await api.call(feedback.post_feedback, "POST", "/api/feedback", user="bob",
                   body={"artifact_kind": "catalog", "artifact_id": "echo", "rating": 2})
    listed = body(await api.call(feedback.list_feedback, "GET", "/api/feedback",
                                 params={"artifact_kind": "runbook", "artifact_id": "rollback-server"}))
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    url, route = f"/api/feedback/{created['id']}", {"feedback_id": created["id"]}
    for role in (Role.READER, Role.DEVELOPER):
        denied = await api.call(feedback.patch_feedback, "PATCH", url, route=route, roles=(role,),
                                body={"status": "triaged"})
        assert denied.status_code == 403
    for status in ("triaged", "resolved"):
        changed = await api.call(feedback.patch_feedback, "PATCH", url, route=route, roles=(Role.OPERATOR,),
                                 user="olga", body={"status": status})
        assert changed.status_code == 200 and body(changed)["status"] == status
    assert body(changed)["status_by"] == "olga"
    assert [event["diff"]["status"] for event in api.audit("feedback.status")] == [
        {"from": "new", "to": "triaged"}, {"from": "triaged", "to": "resolved"}]
    resolved = body(await api.call(feedback.list_feedback, "GET", "/api/feedback", params={"status": "resolved"}))
    assert [item["id"] for item in resolved["items"]] == [created["id"]]
    shown = body(await api.call(runbooks.get_runbooks, "GET", RUNBOOKS, params={"id": "rollback-server"},
                                headers={"Accept": "application/json"}))
    assert shown["items"][0]["feedback"] == {"count": 1, "average": 4.0}


async def test_feedback_input_is_validated_and_rate_limited_per_identity(api):
    bad = await api.call(feedback.post_feedback, "POST", "/api/feedback",
                         body={"artifact_kind": "wiki", "artifact_id": "x", "rating": 9, "author": "mallory"})
    assert bad.status_code == 400
    assert {error["field"] for error in body(bad)["errors"]} == {"artifact_kind", "rating", "author"}
    unknown = await api.call(feedback.post_feedback, "POST", "/api/feedback",
                             body={"artifact_kind": "runbook", "artifact_id": "nope", "rating": 3})
    assert unknown.status_code == 400 and body(unknown)["errors"][0]["field"] == "artifact_id"
    missing = await api.call(feedback.patch_feedback, "PATCH", "/api/feedback/nope", route={"feedback_id": "nope"},
                             body={"status": "triaged"})
    assert missing.status_code == 404
    bad_status = await api.call(feedback.patch_feedback, "PATCH", "/api/feedback/x", route={"feedback_id": "x"},
                                body={"status": "done"})
    assert bad_status.status_code == 400
    entry = {"artifact_kind": "template", "artifact_id": "runbooks/harden-server.md", "rating": 5}
    # the limit is 3/minute per identity (conftest); "erin" is not slowed by "frank"
    answers = [(await api.call(feedback.post_feedback, "POST", "/api/feedback", body=entry, user="frank")).status_code
               for _ in range(3)]
    assert answers == [201, 201, 201]
    limited = await api.call(feedback.post_feedback, "POST", "/api/feedback", body=entry, user="frank")
    assert limited.status_code == 429 and limited.mimetype == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1 and limited.headers["X-RateLimit-Remaining"] == "0"
    assert (await api.call(feedback.post_feedback, "POST", "/api/feedback", body=entry, user="erin")).status_code == 201
    assert len(api.store.query("feedback", {"author": "frank"})) == 3
