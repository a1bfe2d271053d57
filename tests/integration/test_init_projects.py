"""Projects from `mcpaas init` run their own tests (issue 13 item 1 acceptance).

For each language: the generated tests pass as generated (so the shipped snapshot is what
the server really reports); after a tool gains a parameter the contract test fails with a
diff naming it and the update command; after the documented update command it passes. The
Docker healthcheck script fails against a broken server. checkov scans the Dockerfile and
the workflow. Node dependencies come from the npm registry (`npm install --prefer-offline`,
about 5 s with a warm cache); Python runs with this repo's venv, which has `mcp` 2.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.tooling import tool

NPM_INSTALL = ["npm", "install", "--prefer-offline", "--no-audit", "--no-fund"]
# an optional parameter: calls that worked still work, but the input schema changed
PY_OLD = 'def echo(message: Annotated[str, Field(description="Text to send back.")]) -> str:'
PY_NEW = ('def echo(message: Annotated[str, Field(description="Text to send back.")], '
          'times: int = 1) -> str:')
JS_OLD = 'inputSchema: { message: z.string().describe("Text to send back.") },'
JS_NEW = 'inputSchema: { message: z.string().describe("Text to send back."), times: z.number().int().optional() },'


def scaffold(tmp_path: Path, lang: str) -> Path:
    project = tmp_path / f"contract-{lang}"
    result = CliRunner().invoke(app, ["init", project.name, "--lang", lang, "--dir", str(project)])
    assert result.exit_code == 0, result.output
    return project


def run(project: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=timeout)


def python_tests(project: Path) -> subprocess.CompletedProcess:
    # -p no:cacheprovider: leave the project as generated; -p no:asyncio: this venv's plugin is not the project's
    return run(project, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name} no longer holds {old!r}"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def node_project(tmp_path_factory) -> Path:
    project = scaffold(tmp_path_factory.mktemp("node"), "node")
    installed = run(project, *NPM_INSTALL, timeout=180)
    assert installed.returncode == 0, installed.stderr
    return project


def test_python_project_passes_then_its_contract_fails_on_a_schema_change_until_updated(tmp_path):
    project = scaffold(tmp_path, "python")
    first = python_tests(project)
    assert first.returncode == 0 and "3 passed" in first.stdout, first.stdout + first.stderr

    edit(project / "server.py", PY_OLD, PY_NEW)
    changed = python_tests(project)
    assert changed.returncode == 1 and "1 failed, 2 passed" in changed.stdout, changed.stdout
    assert re.search(r'^\+\s+"times": \{$', changed.stdout, re.MULTILINE)  # the diff names the new parameter
    assert "python -m tests.snapshot --update" in changed.stdout

    updated = run(project, sys.executable, "-m", "tests.snapshot", "--update")
    assert updated.returncode == 0, updated.stderr
    snapshot = json.loads((project / "tests" / "tools.snapshot.json").read_text())
    assert "times" in snapshot["tools"][0]["inputSchema"]["properties"]
    after = python_tests(project)
    assert after.returncode == 0 and "3 passed" in after.stdout, after.stdout


def test_node_project_passes_then_its_contract_fails_on_a_schema_change_until_updated(node_project):
    first = run(node_project, "npm", "test")
    assert first.returncode == 0 and "# pass 3" in first.stdout, first.stdout + first.stderr

    edit(node_project / "server.js", JS_OLD, JS_NEW)
    changed = run(node_project, "npm", "test")
    assert changed.returncode != 0 and "# pass 2" in changed.stdout and "# fail 1" in changed.stdout, changed.stdout
    assert "The tool contract changed" in changed.stdout
    assert re.search(r"^\s*\+\s+times: \{$", changed.stdout, re.MULTILINE)
    assert "npm run snapshot:update" in changed.stdout

    updated = run(node_project, "npm", "run", "snapshot:update")
    assert updated.returncode == 0, updated.stderr
    snapshot = json.loads((node_project / "tests" / "tools.snapshot.json").read_text())
    assert "times" in snapshot["tools"][0]["inputSchema"]["properties"]
    after = run(node_project, "npm", "test")
    assert after.returncode == 0 and "# pass 3" in after.stdout, after.stdout


@pytest.mark.parametrize("lang", ["python", "node"])
def test_the_healthcheck_fails_when_the_server_does_not_speak_mcp(tmp_path, lang, node_project):
    if lang == "python":
        project, argv, server, broken = scaffold(tmp_path, lang), [sys.executable, "healthcheck.py"], "server.py", \
            'raise SystemExit("broken on purpose")\n'
    else:  # the node project has its dependencies installed; break a copy of its server
        project, argv, server, broken = node_project, ["node", "healthcheck.js"], "server.js", \
            'process.stdout.write("not json-rpc\\n"); process.exit(3);\n'
    assert run(project, *argv, timeout=30).returncode == 0
    original = (project / server).read_text()
    (project / server).write_text(broken + original)
    try:
        done = run(project, *argv, timeout=30)
    finally:
        (project / server).write_text(original)
    assert done.returncode == 1 and "unhealthy" in done.stderr, (done.stdout, done.stderr)


@pytest.mark.parametrize("lang", ["python", "node"])
def test_checkov_passes_on_the_generated_dockerfile_and_workflow(tmp_path, lang):
    project = scaffold(tmp_path, lang)
    for framework, target in (("dockerfile", ["-f", str(project / "Dockerfile")]),
                              ("github_actions", ["-d", str(project)])):
        done = subprocess.run([tool("checkov"), *target, "--framework", framework, "--skip-download", "--quiet",
                               "-o", "json"], capture_output=True, text=True, timeout=300)
        report = json.loads(done.stdout)
        assert report["summary"]["parsing_errors"] == 0
        assert report["summary"]["passed"] > 20, report["summary"]  # the file was really scanned
        failed = [check["check_id"] for check in report["results"]["failed_checks"]]
        assert failed == [], f"checkov {framework} failures on the {lang} project: {failed}"
