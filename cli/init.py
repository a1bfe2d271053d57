"""`mcpaas init NAME --lang python|node`: scaffold an MCP server project (issue 13 item 1, docs/init.md).

The project is rendered from the Jinja2 templates under `catalog/templates/project/<lang>/`
in a `SandboxedEnvironment` with `StrictUndefined` (as runbooks are, `shared.runbooks`): a
missing variable is an error, never an empty string. Every template file ends in `.j2`
(so no template is importable, collected by pytest or linted as code); a path segment
starting with `dot-` becomes a dotfile (`dot-github` → `.github`), which keeps the
templates visible to package-data globs. `_common/` holds the parents that the
languages' README and workflow extend; it is never copied.
"""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer
import yaml
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from rich.markup import escape

import catalog
from cli import specs
from cli.errors import CliError, SpecError
from cli.output import Format, OutputOpt, emit
from shared.models import DNS1123_LABEL

TEMPLATES_DIR = Path(catalog.__file__).resolve().parent / "templates" / "project"
SUFFIX = ".j2"
DOT_PREFIX = "dot-"
SPEC_FILE = "mcpaas.yaml"
NAME_MAX = 63  # ServerSpec.name's max_length (shared/models.py)


class Lang(str, Enum):
    """The languages `init` scaffolds, each on its official MCP SDK."""

    PYTHON = "python"
    NODE = "node"


# what to run in the new project, per language, after `cd NAME`
NEXT_STEPS = {
    Lang.PYTHON: ["python -m venv .venv && . .venv/bin/activate",
                  "pip install -r requirements-dev.txt",
                  "python -m pytest",
                  "mcpaas dev",
                  "mcpaas deploy -f mcpaas.yaml"],
    Lang.NODE: ["npm install",
                "npm test",
                "mcpaas dev",
                "mcpaas deploy -f mcpaas.yaml"],
}


def _environment() -> SandboxedEnvironment:
    # Sandboxed although the templates are ours: NAME and the description are user input,
    # and the sandbox keeps a template from ever reaching Python internals through them.
    return SandboxedEnvironment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined,
                                autoescape=False, keep_trailing_newline=True, trim_blocks=True,
                                lstrip_blocks=True)


def target_path(template: PurePosixPath) -> PurePosixPath:
    """Where template `template` (relative to its language folder) lands in the project."""
    parts = ["." + part[len(DOT_PREFIX):] if part.startswith(DOT_PREFIX) else part for part in template.parts]
    parts[-1] = parts[-1].removesuffix(SUFFIX)
    return PurePosixPath(*parts)


def check_name(name: str) -> None:
    """Raise SpecError unless `name` is a ServerSpec name (a DNS-1123 label, at most 63 characters).

    Checked before anything renders or touches the disk: the name is also a directory name.
    """
    # fullmatch: the pattern's `$` would also accept a trailing newline
    if len(name) > NAME_MAX or not DNS1123_LABEL.fullmatch(name):
        raise SpecError(f"invalid name {name!r}", [{"field": "name", "message":
                        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and "
                        f"ending with a letter or digit, at most {NAME_MAX} characters"}])


def render_project(name: str, lang: Lang, description: str) -> dict[PurePosixPath, str]:
    """Every file of a new `lang` project as {relative path: text}, in path order.

    Raises SpecError for a bad `name` or when the rendered mcpaas.yaml is not a valid
    ServerSpec (for example a description over 2,000 characters), CliError when a
    template fails to render.
    """
    check_name(name)
    if any(char in description for char in "\r\n\0"):
        raise SpecError("--description must be a single line")
    env = _environment()
    root = TEMPLATES_DIR / lang.value
    context = {"name": name, "description": description}
    files: dict[PurePosixPath, str] = {}
    try:
        for path in sorted(root.rglob(f"*{SUFFIX}")):
            relative = PurePosixPath(path.relative_to(root).as_posix())
            files[target_path(relative)] = env.get_template(f"{lang.value}/{relative}").render(context)
    except TemplateError as error:
        raise CliError(f"project template {lang.value} failed to render: {error}") from error
    spec = yaml.safe_load(files[PurePosixPath(SPEC_FILE)])
    # `bundle: "."` is a project path that `mcpaas deploy` packs, uploads and replaces by
    # the bundle's digest before it validates; every other field must already be valid
    spec["package"].pop("bundle")
    specs.validate_spec(spec)
    return files


def create_project(directory: Path, name: str, lang: Lang, description: str) -> list[PurePosixPath]:
    """Write a new project into `directory` (created; may exist only if empty); the files written.

    Everything renders and validates before the first write, so a failure leaves no
    half-made project. Raises SpecError (bad input) or CliError (directory in the way).
    """
    files = render_project(name, lang, description)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise CliError(f"{directory} already exists and is not an empty directory; choose another NAME "
                       "or --dir, or remove it")
    for relative, text in files.items():
        target = directory.joinpath(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return list(files)


def _summary(facts: dict[str, Any]) -> str:
    steps = "\n".join(f"  {escape(step)}" for step in facts["next_steps"])
    return (f"[green]✓[/] Created {facts['name']} ({facts['lang']}, {len(facts['files'])} files) in "
            f"{escape(facts['path'])}\nNext steps:\n{steps}\nThe tool contract and how to update it: README.md, "
            "\"The tool contract\".")


def init(name: Annotated[str, typer.Argument(help="Server name (a DNS-1123 label); also the directory.")],
         lang: Annotated[Lang, typer.Option("--lang", case_sensitive=False, help="Language of the server.")],
         description: Annotated[str | None, typer.Option(help="One-line description (default: a generic "
                                                         "one).")] = None,
         directory: Annotated[Path | None, typer.Option("--dir", help="Directory to create (default: ./NAME); "
                                                        "must not exist or be empty.")] = None,
         output: OutputOpt = Format.TABLE) -> None:
    """Scaffold an MCP server project: an `echo` tool on the official SDK, tests with a
    tool-schema contract, a Dockerfile, mcpaas.yaml and a GitHub Actions workflow."""
    target = directory if directory is not None else Path(name)
    files = create_project(target, name, lang, description or f"{name}: an MCP server made with mcpaas init.")
    steps = [f"cd {shlex.quote(str(target))}", *NEXT_STEPS[lang]]
    emit({"name": name, "lang": lang.value, "path": str(target), "files": [str(path) for path in files],
          "next_steps": steps}, output, _summary)
