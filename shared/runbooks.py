"""Adaptive executable runbooks (FR-009, FR-010, UC8): templates in `catalog/templates/runbooks`.

A runbook template is Markdown with YAML front matter (`RunbookMeta`: id, title,
version, `last_updated`, sources, roles, scenarios, server kinds) and a Jinja2 body
whose steps are ``{% call step("Title", roles=[...], scenarios=[...]) %}...{% endcall %}``
blocks. Rendering keeps only the steps tagged for the requested role and scenario
(tags default to the runbook's own lists) and fills parameters from the server and
the deployment (`RunbookParams`).

Templates render in Jinja2's `SandboxedEnvironment` with `StrictUndefined`: a missing
parameter and any reach for an unsafe attribute (``''.__class__.__mro__``) fail the
render with `RunbookError` instead of leaking into the output
(https://jinja.palletsprojects.com/en/stable/sandbox/). Values reach bash only through
the `shquote` filter (`shlex.quote`) and YAML only through `yamlstr` (a JSON string).

Executable-documentation format (docs/runbooks.md): every ```` ```bash ```` block runs
on its own after the runbook's setup blocks (environment variables are declared there,
up front); a ```` ```text expected ```` block right after a bash block lists lines that
must appear, in order, in that block's output (`expected_missing`).
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import MCPaaSError
from shared.models import ServerKind

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "catalog" / "templates" / "runbooks"
SUFFIX = ".md.j2"


class RunbookRole(str, Enum):
    """Who reads a runbook (PRD UC8 personas)."""

    PLATFORM_ENGINEER = "platform-engineer"
    DEVELOPER = "developer"
    SRE = "sre"
    SECURITY_OFFICER = "security-officer"


class Scenario(str, Enum):
    """What the reader is doing (FR-010)."""

    FIRST_DEPLOY = "first-deploy"
    MODERNIZATION = "modernization"
    SECURITY_HARDENING = "security-hardening"
    INCIDENT_RESPONSE = "incident-response"
    COST_REVIEW = "cost-review"


class RunbookError(MCPaaSError):
    """A template is malformed, needs a parameter it was not given, or tried to leave the
    sandbox; the runbook is refused (500: the fault is the template's, not the caller's)."""

    status = 500
    title = "Runbook Template Refused"


class RunbookMeta(BaseModel):
    """Front matter of one runbook template; shown with every rendering (FR-010)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=80)
    title: str = Field(min_length=1, max_length=200)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    last_updated: date
    summary: str = Field(default="", max_length=500)
    sources: list[str] = Field(min_length=1)
    roles: list[RunbookRole] = Field(min_length=1)
    scenarios: list[Scenario] = Field(min_length=1)
    kinds: list[ServerKind] = Field(default_factory=lambda: list(ServerKind))


@dataclass(frozen=True)
class ServerParams:
    """The server a runbook is about: a real one, or the example a first deploy starts from."""

    name: str
    kind: str
    endpoint: str
    owner_team: str = ""
    command: str = "mcp-server-time"
    args: tuple[str, ...] = ()
    image: str = ""
    url: str = ""
    revision: int = 0
    example: bool = True


@dataclass(frozen=True)
class RunbookParams:
    """Everything a template may read: the server and the deployment's real values
    (API and gateway URLs, Kubernetes namespaces, Azure resource group; None when the
    deployment has none, and the template then asks for it in its setup block)."""

    server: ServerParams
    api_url: str
    gateway_url: str
    namespace: str
    gateway_namespace: str
    resource_group: str | None
    auth_mode: str
    sandbox: str


@dataclass
class RenderedStep:
    """One step kept in a rendering, with the tags it was kept for."""

    number: int
    title: str
    roles: tuple[str, ...]
    scenarios: tuple[str, ...]
    setup: bool


@dataclass
class RenderedRunbook:
    """One runbook rendered for a role and scenario: its metadata, kept steps and Markdown."""

    meta: RunbookMeta
    steps: list[RenderedStep] = field(default_factory=list)
    markdown: str = ""

    @property
    def has_content(self) -> bool:
        """True when a step other than setup was kept for the role and scenario."""
        return any(not step.setup for step in self.steps)


@dataclass(frozen=True)
class Template:
    """A loaded template: its metadata and the compiled body."""

    meta: RunbookMeta
    body: Any  # jinja2.Template
    path: Path


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                               trim_blocks=True, lstrip_blocks=True)
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    env.filters["yamlstr"] = lambda value: json.dumps(str(value))
    return env


_ENV = _environment()
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def parse_template(text: str, path: Path = Path("<string>")) -> Template:
    """Split `text` into front matter and body, validate the metadata, compile the body.

    Raises RunbookError naming `path` for a missing or invalid front matter or a Jinja2
    syntax error.
    """
    match = _FRONT_MATTER.match(text)
    if not match:
        raise RunbookError(f"{path.name}: no YAML front matter (--- ... ---) at the top")
    try:
        meta = RunbookMeta.model_validate(yaml.safe_load(match.group(1)))
        body = _ENV.from_string(text[match.end():])
    except (yaml.YAMLError, ValidationError, TemplateError) as error:
        raise RunbookError(f"{path.name}: {error}") from None
    return Template(meta, body, path)


@functools.lru_cache(maxsize=4)
def load_library(directory: Path = TEMPLATES_DIR) -> dict[str, Template]:
    """Every `*.md.j2` template under `directory` by id, compiled once per process.

    Raises RunbookError for a bad template or two templates with one id.
    """
    library: dict[str, Template] = {}
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        template = parse_template(path.read_text(encoding="utf-8"), path)
        if template.meta.id in library:
            raise RunbookError(f"{path.name}: duplicate runbook id '{template.meta.id}'")
        library[template.meta.id] = template
    return library


def _step_tag(meta: RunbookMeta, role: RunbookRole, scenario: Scenario,
              kept: list[RenderedStep]) -> Callable[..., str]:
    """The `step` callable a template calls: the step's Markdown when tagged for
    (`role`, `scenario`), else nothing. Tags outside the runbook's own lists are errors."""
    own_roles = {item.value for item in meta.roles}
    own_scenarios = {item.value for item in meta.scenarios}

    def step(title: str, roles: list[str] | None = None, scenarios: list[str] | None = None,
             setup: bool = False, caller: Callable[[], str] | None = None) -> str:
        step_roles = tuple(roles or sorted(own_roles))
        step_scenarios = tuple(scenarios or sorted(own_scenarios))
        stray = (set(step_roles) - own_roles) | (set(step_scenarios) - own_scenarios)
        if stray:
            raise RunbookError(f"runbook '{meta.id}' step '{title}' has tags {sorted(stray)} "
                               "not in its front matter")
        if role.value not in step_roles or scenario.value not in step_scenarios or caller is None:
            return ""
        number = len(kept) + 1
        kept.append(RenderedStep(number, title, step_roles, step_scenarios, setup))
        marker = f"<!-- step roles={','.join(step_roles)} scenarios={','.join(step_scenarios)} -->"
        return f"## {number}. {title}\n{marker}\n\n{caller().strip()}\n\n"

    return step


def _header(meta: RunbookMeta, role: RunbookRole, scenario: Scenario, params: RunbookParams) -> str:
    sources = "\n".join(f"- <{source}>" for source in meta.sources)
    about = "example server (none named)" if params.server.example else f"server `{params.server.name}`"
    return (f"# {meta.title}\n\n{meta.summary}\n\n"
            f"| version | last updated | role | scenario | for |\n|---|---|---|---|---|\n"
            f"| {meta.version} | {meta.last_updated.isoformat()} | {role.value} | {scenario.value} | {about} |\n\n"
            f"Sources:\n{sources}\n\n")


def render_template(template: Template, role: RunbookRole, scenario: Scenario,
                    params: RunbookParams) -> RenderedRunbook:
    """Render `template` for (`role`, `scenario`) with `params`.

    Returns an empty rendering (no steps) when the runbook is not for that role,
    scenario or (for a named server) server kind. Raises RunbookError when the template needs an unknown
    parameter, tags a step wrongly, or reaches outside the sandbox (SecurityError).
    """
    meta = template.meta
    # a named server picks the runbooks of its kind; the example fits every runbook
    if (role not in meta.roles or scenario not in meta.scenarios
            or not params.server.example and ServerKind(params.server.kind) not in meta.kinds):
        return RenderedRunbook(meta)
    kept: list[RenderedStep] = []
    context = {"server": params.server, "platform": params, "step": _step_tag(meta, role, scenario, kept)}
    try:
        body = template.body.render(context)
    except SecurityError as error:
        raise RunbookError(f"runbook '{meta.id}' refused: it tried to leave the template sandbox ({error})") from None
    except TemplateError as error:
        raise RunbookError(f"runbook '{meta.id}' failed to render: {error}") from None
    markdown = _header(meta, role, scenario, params) + re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    return RenderedRunbook(meta, kept, markdown)


def render_runbooks(role: RunbookRole, scenario: Scenario, params: RunbookParams,
                    runbook_id: str | None = None,
                    library: dict[str, Template] | None = None) -> list[RenderedRunbook]:
    """Every runbook (or only `runbook_id`) with content for (`role`, `scenario`), in id order.

    Raises KeyError for an unknown `runbook_id`, RunbookError as `render_template`.
    """
    library = load_library() if library is None else library
    chosen = [library[runbook_id]] if runbook_id else list(library.values())
    rendered = [render_template(template, role, scenario, params) for template in chosen]
    return [runbook for runbook in rendered if runbook.has_content]


@dataclass(frozen=True)
class Block:
    """A fenced code block of a rendered runbook: ``bash`` (with the ``text expected``
    block that follows it, if any) in document order; `setup` for a setup step's block."""

    code: str
    expected: str | None
    setup: bool


_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)
_SETUP_MARK = "# runbook: setup"


def code_blocks(markdown: str) -> list[Block]:
    """The bash blocks of `markdown`, each with its expected output (None when none follows).

    A block whose first line is ``# runbook: setup`` declares the environment: it runs
    before every other block.
    """
    blocks: list[Block] = []
    fences = [(match.group(1).strip(), match.group(2), match.start()) for match in _FENCE.finditer(markdown)]
    for index, (info, code, _) in enumerate(fences):
        if info != "bash":
            continue
        following = fences[index + 1] if index + 1 < len(fences) else None
        expected = following[1] if following and following[0] == "text expected" else None
        blocks.append(Block(code, expected, code.lstrip().startswith(_SETUP_MARK)))
    return blocks


def expected_missing(expected: str, output: str) -> list[str]:
    """The lines of `expected` (blank lines skipped) that do not appear, in order, as
    substrings of lines of `output`; empty when the output matches."""
    lines = output.splitlines()
    position = 0
    missing: list[str] = []
    for wanted in (line.strip() for line in expected.splitlines()):
        if not wanted:
            continue
        found = next((i for i in range(position, len(lines)) if wanted in lines[i]), None)
        if found is None:
            missing.append(wanted)
        else:
            position = found + 1
    return missing


def example_server(gateway_url: str) -> ServerParams:
    """The server a first-deploy runbook deploys when none is named: `mcp-server-time`
    (PyPI), which the default clearance admits (`mcp-server-*`)."""
    return ServerParams(name="hello-mcp", kind=ServerKind.PACKAGE.value,
                        endpoint=f"{gateway_url}/servers/hello-mcp/mcp", owner_team="",
                        command="mcp-server-time", args=("--local-timezone", "UTC"))


def server_params(server: Any, gateway_url: str) -> ServerParams:
    """The `ServerParams` of a stored `shared.models.Server` (its real name, kind,
    endpoint, owner, command or image or URL, current revision)."""
    spec = server.spec
    package, container, remote = spec.package, spec.container, spec.remote
    return ServerParams(
        name=server.name, kind=spec.kind.value,
        endpoint=server.endpoint or f"{gateway_url}/servers/{server.name}/mcp",
        owner_team=spec.owner_team, command=package.command if package else "",
        args=tuple(package.args) if package else (), image=container.image if container else "",
        url=remote.url if remote else "", revision=server.revision, example=False)


def runbook_params(settings: Any, server: Any | None = None) -> RunbookParams:
    """Parameters from the process settings (`shared.settings.Settings`) and, when given,
    a stored server; else the example server."""
    chosen = server_params(server, settings.gateway_url) if server is not None else example_server(
        settings.gateway_url)
    return RunbookParams(server=chosen, api_url=settings.api_url, gateway_url=settings.gateway_url,
                         namespace=settings.kube_namespace, gateway_namespace=settings.gateway_namespace,
                         resource_group=settings.resource_group, auth_mode=settings.auth_mode.value,
                         sandbox=settings.gateway_sandbox)
