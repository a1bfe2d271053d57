"""`--output table|json|yaml` on `costs`, `runbook`, `checklist` and `feedback` (issue 13
item 5): the machine formats parse and carry the facts the table shows.

The control plane answers through httpx's transport hook with bodies shaped as its
triggers answer (triggers/costs.py, runbooks.py, checklists.py, feedback.py).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml

RUNBOOK = {"id": "harden-server", "title": "Harden a server", "version": "1.0.0", "last_updated": "2026-11-01",
           "summary": "", "sources": ["003"], "roles": ["security-officer"], "scenarios": ["security-hardening"],
           "kinds": ["package"], "feedback": {"count": 2, "average": 4.5}}
MARKDOWN = "# Harden a server\n\n```bash\nmcpaas status notes\n```\n"
CHECKLIST = {"server": "notes", "checked": 1, "total": 2, "score": 0.5, "items": [
    {"id": "owner-set", "checked": True, "automatic": True, "category": "governance", "detail": "team-a",
     "reference": "FR-012"},
    {"id": "licenses-reviewed", "checked": False, "automatic": False, "category": "compliance", "note": "",
     "by": "", "reference": "FR-012"}]}
ENTRY = {"id": "fb-1", "artifact_kind": "runbook", "artifact_id": "harden-server", "rating": 4, "status": "new",
         "author": "ann", "text": "clear steps", "created_at": "2026-12-01T00:00:00Z"}
COSTS = {"since": "2026-11-01T00:00:00+00:00", "until": "2026-12-01T00:00:00+00:00", "group_by": ["server"],
         "items": [{"server": "notes", "calls": 12, "input_tokens": 300, "output_tokens": 90, "total_tokens": 390,
                    "errors": 1, "latency_ms": 41.5}]}


def _answer(request: httpx.Request) -> httpx.Response:
    path, method = request.url.path, request.method
    if path == "/api/costs":
        return httpx.Response(200, json=COSTS)
    if path == "/api/runbooks":
        if "markdown" in request.headers.get("Accept", ""):
            return httpx.Response(200, text=MARKDOWN, headers={"Content-Type": "text/markdown"})
        return httpx.Response(200, json={"items": [RUNBOOK]})
    if path == "/api/servers/notes/checklist":
        return httpx.Response(200, json=CHECKLIST)
    if path == "/api/feedback":
        return httpx.Response(201 if method == "POST" else 200, json=ENTRY if method == "POST" else {"items": [ENTRY]})
    if path == "/api/feedback/fb-1" and method == "PATCH":
        return httpx.Response(200, json={**ENTRY, **json.loads(request.content)})
    return httpx.Response(404, json={"title": "Not Found", "status": 404, "detail": path})


def _facts_of_runbook_list(body: dict[str, Any]) -> list[str]:
    return [value for item in body["items"] for value in (item["id"], item["title"], "4.5 (2)")]


CASES = [
    (["costs"], lambda b: [str(v) for row in b["items"] for v in row.values()]),
    (["runbook"], _facts_of_runbook_list),
    (["runbook", "--role", "security-officer", "--scenario", "security-hardening"],
     lambda b: [b["markdown"].strip()]),
    (["checklist", "notes"], lambda b: [b["server"], f"{b['checked']}/{b['total']}",
                                        *(item["id"] for item in b["items"]), "team-a"]),
    (["feedback", "list"], lambda b: [v for item in b["items"]
                                      for v in (item["id"], item["status"], item["author"], item["text"])]),
    (["feedback", "add", "--kind", "runbook", "--id", "harden-server", "--rating", "4"],
     lambda b: [b["id"], b["status"]]),
    (["feedback", "status", "fb-1", "triaged"], lambda b: [b["id"], "triaged"]),
]


@pytest.mark.parametrize(("args", "facts"), CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_output_parses_and_carries_the_tables_facts(invoke, args, facts, fmt):
    transport = httpx.MockTransport(_answer)
    machine = invoke(*args, "--output", fmt, transport=transport)
    assert machine.exit_code == 0, machine.output
    body = json.loads(machine.stdout) if fmt == "json" else yaml.safe_load(machine.stdout)
    table = invoke(*args, transport=transport)
    assert table.exit_code == 0, table.output
    wanted = facts(body)
    assert wanted
    for value in wanted:
        assert value in table.stdout, (value, table.stdout)


def test_a_runbook_as_json_holds_its_markdown_and_metadata(invoke):
    body = json.loads(invoke("runbook", "--role", "security-officer", "--scenario", "security-hardening",
                             "-o", "json", transport=httpx.MockTransport(_answer)).stdout)
    assert body["markdown"] == MARKDOWN and body["items"] == [RUNBOOK]
    assert (body["role"], body["scenario"], body["server"]) == ("security-officer", "security-hardening", None)


def test_the_old_json_flags_still_print_json(invoke):
    transport = httpx.MockTransport(_answer)
    assert json.loads(invoke("checklist", "notes", "--json", transport=transport).stdout) == CHECKLIST
    assert json.loads(invoke("runbook", "--json", transport=transport).stdout) == {"items": [RUNBOOK]}
    assert json.loads(invoke("feedback", "list", "--json", transport=transport).stdout) == {"items": [ENTRY]}


def test_costs_csv_is_passed_through(invoke):
    csv = "server,calls\nnotes,12\n"
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=csv, headers={"Content-Type": "text/csv"}))
    result = invoke("costs", "--csv", transport=transport)
    assert result.stdout == csv


def _provisioning(outcome: dict[str, Any]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/controlplane":
            return httpx.Response(202, headers={"Location": "/api/operations/op-p"}, json={"operation_id": "op-p"})
        if request.url.path == "/api/operations/op-p":
            return httpx.Response(200, json={"runtimeStatus": "Completed", "output": outcome,
                                             "customStatus": {"step": "cluster", "number": 2, "of": 2}})
        return httpx.Response(404, json={"title": "Not Found", "status": 404, "detail": request.url.path})
    return httpx.MockTransport(handle)


def test_provision_prints_its_outcome_as_json(invoke, tmp_path):
    spec = tmp_path / "cp.yaml"
    spec.write_text("name: cp\n")
    done = {"status": "Succeeded", "failed_step": None, "reason": "", "results": {"cluster": {"name": "aks-1"}}}
    result = invoke("provision", "-f", str(spec), "-o", "json", transport=_provisioning(done))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {**done, "operation_id": "op-p"}
    table = invoke("provision", "-f", str(spec), transport=_provisioning(done))
    assert "control plane provisioned" in table.stdout and "[2/2] cluster" in table.stderr

    failed = {"status": "Failed", "failed_step": "cluster", "reason": "quota exceeded", "results": {}}
    refused = invoke("provision", "-f", str(spec), "-o", "json", transport=_provisioning(failed))
    assert refused.exit_code == 1 and refused.stdout == "" and "quota exceeded" in refused.stderr
