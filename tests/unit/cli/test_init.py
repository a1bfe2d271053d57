"""`mcpaas init NAME --lang python|node` (issue 13 item 1): what it writes, in-process.

The generated projects' own tests, the contract-test workflow and checkov run in
tests/integration/test_init_projects.py; the deploy in tests/e2e/test_init.py.
"""

from __future__ import annotations

import ast
import glob
import json
import tomllib
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.init import TEMPLATES_DIR, Lang, target_path
from cli.main import app
from tests.tooling import REPO

COMMON = {"README.md", "mcpaas.yaml", "Dockerfile", ".dockerignore", ".gitignore", ".mcpaasignore",
          ".github/workflows/deploy.yml", "tests/tools.snapshot.json"}
FILES = {Lang.PYTHON: COMMON | {"server.py", "healthcheck.py", "requirements.txt", "requirements-dev.txt",
                                "pytest.ini", "tests/__init__.py", "tests/snapshot.py", "tests/test_server.py"},
         Lang.NODE: COMMON | {"server.js", "healthcheck.js", "package.json", "tests/snapshot.js",
                              "tests/server.test.js"}}
PACKAGES = {Lang.PYTHON: {"command": "python", "args": ["server.py"], "bundle": ".", "session_mode": "shared"},
            Lang.NODE: {"command": "node", "args": ["server.js"],
                        "install": ["npm", "install", "--omit=dev", "--no-audit", "--no-fund"],
                        "bundle": ".", "session_mode": "shared"}}


def init(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["init", *args], env={"COLUMNS": "200"}, catch_exceptions=False)


def files_under(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize("lang", list(Lang))
def test_init_writes_the_project_with_the_spec_contract_and_prints_next_steps(tmp_path, lang):
    project = tmp_path / "hello-mcp"
    result = init(tmp_path, "hello-mcp", "--lang", lang.value, "--dir", str(project))
    assert result.exit_code == 0, result.output
    assert files_under(project) == FILES[lang]
    assert "Next steps" in result.stdout and "mcpaas deploy -f mcpaas.yaml" in result.stdout
    spec = yaml.safe_load((project / "mcpaas.yaml").read_text())
    assert spec == {"name": "hello-mcp", "kind": "package", "description": "hello-mcp: an MCP server made with "
                    "mcpaas init.", "package": PACKAGES[lang]}
    assert "hello-mcp" in (project / "README.md").read_text()
    assert "{{" not in (project / "README.md").read_text()  # every Jinja expression rendered


def test_the_node_project_pins_the_sdk_major_this_repo_runs_and_the_scripts_it_documents(tmp_path):
    init(tmp_path, "hello-node", "--lang", "node", "--dir", str(tmp_path / "p"))
    package = json.loads((tmp_path / "p" / "package.json").read_text())
    assert package["type"] == "module" and package["name"] == "hello-node"
    assert set(package["scripts"]) == {"start", "test", "snapshot:update"}
    sdk = json.loads((REPO / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").read_text())
    wanted = package["dependencies"]["@modelcontextprotocol/sdk"]
    assert re.fullmatch(r"\^(\d+)\.\d+\.\d+", wanted).group(1) == sdk["version"].split(".")[0]
    assert "zod" in package["dependencies"]


@pytest.mark.parametrize("lang", list(Lang))
def test_the_workflow_tests_builds_into_acr_with_oidc_and_deploys(tmp_path, lang):
    init(tmp_path, "wf", "--lang", lang.value, "--dir", str(tmp_path / "p"))
    workflow = yaml.safe_load((tmp_path / "p" / ".github" / "workflows" / "deploy.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "push" in triggers and "pull_request" in triggers
    assert workflow["permissions"] == {"contents": "read"}  # least privilege; jobs widen it
    jobs = workflow["jobs"]
    assert jobs["image"]["needs"] == "test" and jobs["deploy"]["needs"] == "image"
    runs = {job: " ".join(step.get("run", "") for step in body["steps"]) for job, body in jobs.items()}
    uses = {job: [step.get("uses", "").split("@")[0] for step in body["steps"]] for job, body in jobs.items()}
    assert ("python -m pytest" if lang is Lang.PYTHON else "npm test") in runs["test"]
    for job in ("image", "deploy"):
        assert "azure/login" in uses[job] and jobs[job]["permissions"]["id-token"] == "write"
        login = next(step for step in jobs[job]["steps"] if step.get("uses", "").startswith("azure/login"))
        assert "client-secret" not in login["with"] and "creds" not in login["with"]  # OIDC, no stored secret
    assert re.search(r"az acr build --registry \"\$ACR_NAME\" --image \"wf:\$\{GITHUB_SHA\}\"", runs["image"])
    assert "mcpaas deploy -f mcpaas.yaml" in runs["deploy"]


@pytest.mark.parametrize("lang", list(Lang))
def test_the_dockerfile_is_multi_stage_non_root_with_an_mcp_healthcheck(tmp_path, lang):
    init(tmp_path, "img", "--lang", lang.value, "--dir", str(tmp_path / "p"))
    text = (tmp_path / "p" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.MULTILINE)
    assert len(stages) == 2 and stages[0][1] == "build" and "--from=build" in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    healthcheck = re.findall(r"^HEALTHCHECK .*CMD (\[.*\])$", text, flags=re.MULTILINE)
    script = "healthcheck.py" if lang is Lang.PYTHON else "healthcheck.js"
    assert len(healthcheck) == 1 and json.loads(healthcheck[0])[-1] == script
    probe = (tmp_path / "p" / script).read_text()
    assert "list_tools" in probe or "listTools" in probe  # it speaks MCP, not a port probe
    ignored = (tmp_path / "p" / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and f"!{script}" in ignored and not any(rule.startswith("!tests") for rule in ignored)


@pytest.mark.parametrize("name", ["Hello", "hello_mcp", "-hello", "hello-", "a" * 64, "../evil", "", "x y", "hello\n"])
def test_a_name_that_is_not_a_server_name_is_refused_before_anything_is_written(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    result = init(tmp_path, "--lang", "python", "--", name)  # `--`: "-hello" is a name, not an option
    assert result.exit_code == 2, result.output
    assert "DNS-1123" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_directory_is_never_overwritten(tmp_path):
    project = tmp_path / "taken"
    project.mkdir()
    (project / "server.py").write_text("mine")
    result = init(tmp_path, "taken", "--lang", "python", "--dir", str(project))
    assert result.exit_code == 1 and "not an empty directory" in result.output
    assert files_under(project) == {"server.py"} and (project / "server.py").read_text() == "mine"
    (tmp_path / "a-file").write_text("x")
    assert init(tmp_path, "a-file", "--lang", "node", "--dir", str(tmp_path / "a-file")).exit_code == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert init(tmp_path, "empty", "--lang", "node", "--dir", str(empty)).exit_code == 0


def test_the_default_directory_is_the_name_and_json_output_lists_the_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = init(tmp_path, "svc", "--lang", "node", "-o", "json")
    facts = json.loads(result.stdout)
    assert facts["path"] == "svc" and facts["lang"] == "node" and facts["next_steps"][0] == "cd svc"
    assert set(facts["files"]) == FILES[Lang.NODE] == files_under(tmp_path / "svc")
    as_yaml = yaml.safe_load(init(tmp_path, "svc2", "--lang", "node", "-o", "yaml").stdout)
    table = init(tmp_path, "svc3", "--lang", "node").stdout
    assert as_yaml == {**facts, "name": "svc2", "path": "svc2", "next_steps": ["cd svc2", *facts["next_steps"][1:]]}
    assert all(step in table for step in ["cd svc3", *facts["next_steps"][1:]])  # the table's facts are the same
    assert f"{len(facts['files'])} files" in table and "(node" in table


@pytest.mark.parametrize("lang", list(Lang))
def test_a_hostile_description_stays_data_in_every_file(tmp_path, lang):
    hostile = "it's \"quoted\" {{ 7*7 }} {% raw %} $HOME `id` \\ é"
    result = init(tmp_path, "quoted", "--lang", lang.value, "--description", hostile, "--dir", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    project = tmp_path / "p"
    assert yaml.safe_load((project / "mcpaas.yaml").read_text())["description"] == hostile
    if lang is Lang.PYTHON:
        tree = ast.parse((project / "server.py").read_text())
        strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)]
        assert hostile in strings
    else:
        assert json.loads((project / "package.json").read_text())["description"] == hostile
        # a JSON string literal is a JavaScript string literal
        literal = re.search(r"instructions: (\".*\") }", (project / "server.js").read_text()).group(1)
        assert json.loads(literal) == hostile
    assert "49" not in (project / "README.md").read_text()  # not evaluated as a template


def test_a_multi_line_or_oversized_description_is_refused(tmp_path):
    assert init(tmp_path, "x", "--lang", "python", "--description", "a\nb", "--dir", str(tmp_path / "a")).exit_code == 2
    result = init(tmp_path, "x", "--lang", "python", "--description", "d" * 2001, "--dir", str(tmp_path / "b"))
    assert result.exit_code == 2 and "description" in result.output
    assert list(tmp_path.iterdir()) == []


def test_dot_segments_become_dotfiles_and_every_template_is_packaged(tmp_path):
    assert str(target_path(Path("dot-github/workflows/deploy.yml.j2"))) == ".github/workflows/deploy.yml"
    assert str(target_path(Path("tests/snapshot.py.j2"))) == "tests/snapshot.py"
    templates = {path for path in TEMPLATES_DIR.rglob("*") if path.is_file()}
    assert templates and all(path.suffix == ".j2" for path in templates)
    # setuptools globs package-data patterns recursively from the package's directory
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["catalog"]
    packaged = {Path(found) for pattern in patterns
                for found in glob.glob(str(REPO / "catalog" / pattern), recursive=True)}
    assert templates <= packaged
