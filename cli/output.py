"""`--output table|json|yaml`: one option, one way to print a result.

`table` is for people (rich, on stdout); `json` and `yaml` print the same facts as plain
data for scripts, with nothing else on stdout (progress and errors go to stderr).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum
from typing import Annotated, Any

import typer
import yaml
from rich.console import RenderableType

from cli import render


class Format(str, Enum):
    """How a command prints its result."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOpt = Annotated[Format, typer.Option("--output", "-o", help="table (for people), json or yaml (for scripts).",
                                           case_sensitive=False)]


def emit(data: Any, fmt: Format, table: Callable[[Any], RenderableType | str]) -> None:
    """Print `data` as JSON or YAML, or `table(data)` on the console for `Format.TABLE`."""
    if fmt is Format.JSON:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif fmt is Format.YAML:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    else:
        render.out().print(table(data))


_REQUESTED: ContextVar[Format] = ContextVar("mcpaas_output", default=Format.TABLE)


@contextmanager
def requested(output: Any = None, as_json: Any = False) -> Iterator[Format]:
    """Note the running command's `--output` (or legacy `--json`) for code deep below it,
    such as the progress of a wait (`cli.wait`); table when the command has neither."""
    chosen = Format.JSON if as_json is True else output if isinstance(output, Format) else Format.TABLE
    token = _REQUESTED.set(chosen)
    try:
        yield chosen
    finally:
        _REQUESTED.reset(token)


def requested_format() -> Format:
    """The format noted by the innermost `requested` (table outside any command)."""
    return _REQUESTED.get()
