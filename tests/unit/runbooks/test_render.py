"""Runbook rendering (issue 14 acceptance): every role and scenario pair with content keeps
only its steps, fills every parameter, and its bash passes `bash -n` and shellcheck;
values reach bash quoted; templates cannot leave the Jinja2 sandbox."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared import runbooks
from shared.models import ContainerSource, PackageSource, RemoteSource, Server, ServerSpec
from shared.runbooks import RunbookError, RunbookRole, Scenario
from shared.settings import Settings

UNRENDERED = re.compile(r"\{\{|\{%|%\}|\{#")  # JSON in bash blocks may end in }}}, never start {{
MARKER = re.compile(r"<!-- step roles=(\S+) scenarios=(\S+) -->")
SETTINGS = Settings(data_dir=Path("/nonexistent"), resource_group="rg-shop-prod", kube_namespace="mcp-shop",
                    MCPAAS_API_URL="https://api.shop.example", MCPAAS_GATEWAY_URL="https://mcp.shop.example")


def _server(kind: str) -> Server:
    sources = {"package": {"package": PackageSource(command="uvx", args=["mcp-server-fetch"])},
               "container": {"container": ContainerSource(image="acrshop.azurecr.io/weather:1.2")},
               "remote": {"remote": RemoteSource(url="https://tools.shop.example/mcp")}}
    spec = ServerSpec(name=f"shop-{kind}", kind=kind, owner_team="shop", **sources[kind])
    return Server(name=spec.name, spec=spec, revision=3, endpoint=f"https://mcp.shop.example/servers/{spec.name}/mcp")


PARAMS = [runbooks.runbook_params(SETTINGS)] + [runbooks.runbook_params(SETTINGS, _server(kind))
                                                 for kind in ("package", "container", "remote")]


def _shellcheck() -> str:
    path = shutil.which("shellcheck")
    assert path, "shellcheck is not installed: apt-get install -y shellcheck (.ci/run installs it)"
    return path


_LINTED: set[str] = set()  # many pairs render the same bash: lint each text once


def _lint(runbook: runbooks.RenderedRunbook) -> None:
    blocks = runbooks.code_blocks(runbook.markdown)
    script = "#!/usr/bin/env bash\n" + "\n".join(block.code for block in blocks)
    if script in _LINTED:
        return
    _LINTED.add(script)
    setup = "\n".join(block.code for block in blocks if block.setup)
    for block in blocks:
        # each block runs on its own after the setup blocks (docs/runbooks.md)
        checked = subprocess.run(["bash", "-n"], input=setup + "\n" + block.code, text=True, capture_output=True)
        assert checked.returncode == 0, f"{runbook.meta.id}: bash -n: {checked.stderr}\n{block.code}"
    linted = subprocess.run([_shellcheck(), "-s", "bash", "-"], input=script, text=True, capture_output=True)
    assert linted.returncode == 0, f"{runbook.meta.id}:\n{linted.stdout}"


@pytest.mark.parametrize("params", PARAMS, ids=["example", "package", "container", "remote"])
def test_every_pair_with_content_keeps_only_its_steps_fills_every_parameter_and_lints(params):
    with_content = 0
    for role, scenario in itertools.product(RunbookRole, Scenario):
        for runbook in runbooks.render_runbooks(role, scenario, params):
            with_content += 1
            text = runbook.markdown
            assert not UNRENDERED.search(text), (runbook.meta.id, UNRENDERED.search(text))
            tags = MARKER.findall(text)
            assert len(tags) == len(runbook.steps) > 1
            for roles, scenarios in tags:
                assert role.value in roles.split(",") and scenario.value in scenarios.split(",")
            meta = runbook.meta
            assert f"| {meta.version} | {meta.last_updated.isoformat()} | {role.value} | {scenario.value} |" in text
            assert all(f"<{source}>" in text for source in meta.sources)
            _lint(runbook)
    assert with_content >= 10


def test_steps_tagged_for_another_scenario_or_role_are_left_out():
    params = PARAMS[0]
    first = runbooks.render_runbooks(RunbookRole.DEVELOPER, Scenario.FIRST_DEPLOY, params, "deploy-package-server")[0]
    ported = runbooks.render_runbooks(RunbookRole.DEVELOPER, Scenario.MODERNIZATION, params, "deploy-package-server")[0]
    assert "Write the server spec" in first.markdown and "Port a stdio server" not in first.markdown
    assert "Port a stdio server" in ported.markdown and "Write the server spec" not in ported.markdown
    sre = runbooks.render_runbooks(RunbookRole.SRE, Scenario.INCIDENT_RESPONSE, params, "investigate-failing-server")[0]
    dev = runbooks.render_runbooks(RunbookRole.DEVELOPER, Scenario.INCIDENT_RESPONSE, params,
                                   "investigate-failing-server")[0]
    assert "/metrics" in sre.markdown and "/metrics" not in dev.markdown
    assert runbooks.render_runbooks(RunbookRole.DEVELOPER, Scenario.COST_REVIEW, params) == []


def test_a_named_server_fills_its_real_values_and_picks_runbooks_of_its_kind():
    container = runbooks.runbook_params(SETTINGS, _server("container"))
    rendered = {runbook.meta.id: runbook.markdown
                for runbook in runbooks.render_runbooks(RunbookRole.PLATFORM_ENGINEER, Scenario.MODERNIZATION,
                                                        container)}
    assert "deploy-package-server" not in rendered  # a package runbook for a container server
    deploy = rendered["deploy-container-server"]
    for line in ("export SERVER_NAME=shop-container", "export NAMESPACE=mcp-shop",
                 "export IMAGE=acrshop.azurecr.io/weather:1.2", "export MCPAAS_API_URL=https://api.shop.example",
                 '"endpoint": "https://mcp.shop.example/servers/shop-container/mcp"'):
        assert line in deploy
    assert "export AZURE_RESOURCE_GROUP=rg-shop-prod" in rendered["tune-quotas"]
    rollback = runbooks.render_runbooks(RunbookRole.SRE, Scenario.INCIDENT_RESPONSE, container, "rollback-server")[0]
    assert 'TARGET_REVISION="${TARGET_REVISION:-2}"' in rollback.markdown  # the revision before 3


def test_a_hostile_argument_reaches_the_command_as_one_literal_word(tmp_path):
    planted = tmp_path / "pwned"
    spec = ServerSpec(name="evil", kind="package",
                      package=PackageSource(command="uvx", args=[f"$(touch {planted})", "a b'c", "`id`"]))
    params = runbooks.runbook_params(SETTINGS, Server(name="evil", spec=spec))
    runbook = runbooks.render_runbooks(RunbookRole.DEVELOPER, Scenario.MODERNIZATION, params,
                                       "deploy-package-server")[0]
    port = next(block.code for block in runbooks.code_blocks(runbook.markdown) if "--command" in block.code)
    # run the step with `mcpaas` replaced by a function that prints its arguments
    script = "mcpaas() { printf '%s\\n' \"$@\"; }\nSERVER_NAME=evil SPEC_FILE=spec.txt\n" + port
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=10)
    assert done.returncode == 0, done.stderr
    assert f"--arg=$(touch {planted})" in done.stdout.splitlines() and "--arg=a b'c" in done.stdout.splitlines()
    assert "--arg=`id`" in done.stdout.splitlines() and not planted.exists()


FRONT = """---
id: probe
title: Probe
version: 1.0.0
last_updated: 2026-12-01
sources: [https://example.org]
roles: [developer]
scenarios: [first-deploy]
---
"""


@pytest.mark.parametrize("escape", ["{{ ''.__class__.__mro__ }}", "{{ server.__class__.__init__.__globals__ }}",
                                    "{{ step.__globals__['__builtins__'] }}",
                                    "{{ ''.__class__.__mro__[1].__subclasses__() }}"])
def test_a_template_that_reaches_outside_the_sandbox_is_refused(escape):
    template = runbooks.parse_template(FRONT + '{% call step("x") %}' + escape + "{% endcall %}")
    with pytest.raises(RunbookError, match="sandbox|unsafe|failed to render") as refused:
        runbooks.render_template(template, RunbookRole.DEVELOPER, Scenario.FIRST_DEPLOY, PARAMS[0])
    assert refused.value.status == 500 and "<class" not in refused.value.detail


def test_a_missing_parameter_or_bad_template_is_an_error_not_a_hole():
    missing = runbooks.parse_template(FRONT + '{% call step("x") %}{{ server.nickname }}{% endcall %}')
    with pytest.raises(RunbookError, match="failed to render"):
        runbooks.render_template(missing, RunbookRole.DEVELOPER, Scenario.FIRST_DEPLOY, PARAMS[0])
    stray = runbooks.parse_template(FRONT + '{% call step("x", roles=["sre"]) %}y{% endcall %}')
    with pytest.raises(RunbookError, match="not in its front matter"):
        runbooks.render_template(stray, RunbookRole.DEVELOPER, Scenario.FIRST_DEPLOY, PARAMS[0])
    with pytest.raises(RunbookError, match="front matter"):
        runbooks.parse_template("# no front matter\n")
    with pytest.raises(RunbookError, match="roles"):
        runbooks.parse_template(FRONT.replace("[developer]", "[intern]"))
    with pytest.raises(RunbookError):
        runbooks.parse_template(FRONT + "{% call step( %}")


def test_expected_output_lines_must_appear_in_order():
    assert runbooks.expected_missing("a\n\nc\n", "x a y\nb\nc") == []
    assert runbooks.expected_missing("c\na", "a\nc") == ["a"]
    blocks = runbooks.code_blocks("```bash\n# runbook: setup\nexport A=1\n```\n\n```bash\necho $A\n```\n\n"
                                  "```text expected\n1\n```\n")
    assert [(block.setup, block.expected) for block in blocks] == [(True, None), (False, "1\n")]
