"""`mcpaas runbook`, `mcpaas checklist` and `mcpaas feedback` (issue 14: FR-009..FR-012;
docs/runbooks.md). Wiring and output only: the control plane renders and evaluates.

Every command takes `--output table|json|yaml` (issue 13 item 5, `cli.output`); the
hidden `--json` of the first version stays as a synonym of `-o json`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.output import Format, OutputOpt, emit
from cli.state import CliState

ROLES = ("platform-engineer", "developer", "sre", "security-officer")
SCENARIOS = ("first-deploy", "modernization", "security-hardening", "incident-response", "cost-review")
AsJson = Annotated[bool, typer.Option("--json", hidden=True, help="Same as --output json.")]


def _state(ctx: typer.Context) -> CliState:
    return ctx.ensure_object(CliState)


def runbooks_table(body: dict[str, Any]) -> Table | str:
    """Runbook metadata (`GET /api/runbooks`, JSON) as a table with each one's rating."""
    if not body["items"]:
        return "No runbook matches."
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "TITLE", "ROLES", "SCENARIOS", "RATING"):
        table.add_column(column, overflow="fold")
    for item in body["items"]:
        rated = item.get("feedback") or {}
        rating = f"{rated['average']:.1f} ({rated['count']})" if rated.get("count") else "-"
        table.add_row(escape(item["id"]), escape(item.get("title", "")), ", ".join(item.get("roles", [])),
                      ", ".join(item.get("scenarios", [])), rating)
    return table


def runbook(ctx: typer.Context,
            role: Annotated[str | None, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = None,
            scenario: Annotated[str | None, typer.Option(help=f"One of: {', '.join(SCENARIOS)}.")] = None,
            server: Annotated[str | None, typer.Option(help="Fill in this server's real values.")] = None,
            runbook_id: Annotated[str | None, typer.Option("--id", help="Only this runbook.")] = None,
            output: OutputOpt = Format.TABLE, as_json: AsJson = False) -> None:
    """Print the runbook for a role and scenario as executable Markdown; without both, list the runbooks.

    `-o json|yaml`: `{"items": [metadata]}`, plus `role`, `scenario`, `server` and the
    `markdown` when a role and a scenario are named.
    """
    output = Format.JSON if as_json else output
    params = {key: value for key, value in {"role": role, "scenario": scenario, "server": server,
                                            "id": runbook_id}.items() if value}
    with _state(ctx).client() as client:
        if not role or not scenario:
            emit({"items": client.runbooks(params)}, output, runbooks_table)
            return
        markdown = client.runbook(params)
        if output is Format.TABLE:
            typer.echo(markdown, nl=False)  # as served: executable Markdown, ready to pipe to a file
            return
        emit({"role": role, "scenario": scenario, "server": server, "items": client.runbooks(params),
              "markdown": markdown}, output, str)


def checklist_table(body: dict[str, Any]) -> Table:
    """The checklist as a table, titled with the readiness score."""
    table = Table(title=f"{escape(body['server'])}: readiness {body['checked']}/{body['total']} "
                        f"({body['score']:.0%})")
    for column in ("", "item", "category", "how", "detail / note", "reference"):
        table.add_column(column)
    for item in body["items"]:
        table.add_row("[green]✓[/]" if item["checked"] else "[red]✗[/]", escape(item["id"]), item["category"],
                      "auto" if item["automatic"] else escape(f"manual {item.get('by', '')}".strip()),
                      escape(item.get("detail") or item.get("note") or ""), escape(item["reference"]))
    return table


def checklist(ctx: typer.Context,
              name: Annotated[str, typer.Argument(help="Server name.")],
              check: Annotated[list[str] | None, typer.Option("--check", help="Mark a manual item done "
                                                              "(repeatable).")] = None,
              uncheck: Annotated[list[str] | None, typer.Option("--uncheck", help="Mark a manual item "
                                                                "not done (repeatable).")] = None,
              note: Annotated[str, typer.Option(help="Note stored with the marks.")] = "",
              output: OutputOpt = Format.TABLE, as_json: AsJson = False) -> None:
    """Show a server's best-practice checklist and readiness score; mark manual items."""
    marks = [{"id": item, "checked": True, "note": note} for item in check or []] + [
        {"id": item, "checked": False, "note": note} for item in uncheck or []]
    with _state(ctx).client() as client:
        body = client.checklist(name, marks)
    emit(body, Format.JSON if as_json else output, checklist_table)


def feedback_table(body: dict[str, Any]) -> Table | str:
    """Feedback entries as a table, newest first."""
    if not body["items"]:
        return "No feedback matches."
    table = Table()
    for column in ("id", "artifact", "rating", "status", "author", "text"):
        table.add_column(column)
    for item in body["items"]:
        table.add_row(escape(item["id"]), escape(f"{item['artifact_kind']}:{item['artifact_id']}"),
                      str(item["rating"]), item["status"], escape(item["author"]), escape(item["text"]))
    return table


def feedback_app(reports_errors: Callable[[Callable[..., Any]], Callable[..., Any]]) -> typer.Typer:
    """The `mcpaas feedback` group; `reports_errors` turns CliError into a message and exit code."""
    group = typer.Typer(help="Rate runbooks, templates and catalog entries; triage the ratings.",
                        no_args_is_help=True)

    @group.command("add")
    @reports_errors
    def add(ctx: typer.Context,
            kind: Annotated[str, typer.Option(help="runbook, template or catalog.")],
            artifact: Annotated[str, typer.Option("--id", help="Runbook id, template path or catalog name.")],
            rating: Annotated[int, typer.Option(min=1, max=5, help="1 (useless) to 5 (great).")],
            text: Annotated[str, typer.Option(help="What to improve.")] = "",
            output: OutputOpt = Format.TABLE) -> None:
        """Rate an artifact; you are the author (from your credential)."""
        with _state(ctx).client() as client:
            entry = client.post_feedback({"artifact_kind": kind, "artifact_id": artifact, "rating": rating,
                                          "text": text})
        emit(entry, output, lambda e: f"Recorded feedback {escape(e['id'])} ({e['status']})")

    @group.command("list")
    @reports_errors
    def list_(ctx: typer.Context,
              kind: Annotated[str | None, typer.Option(help="runbook, template or catalog.")] = None,
              artifact: Annotated[str | None, typer.Option("--id", help="Only this artifact.")] = None,
              status: Annotated[str | None, typer.Option(help="new, triaged or resolved.")] = None,
              output: OutputOpt = Format.TABLE, as_json: AsJson = False) -> None:
        """List feedback newest first."""
        params = {key: value for key, value in {"artifact_kind": kind, "artifact_id": artifact,
                                                "status": status}.items() if value}
        with _state(ctx).client() as client:
            items = client.list_feedback(params)
        emit({"items": items}, Format.JSON if as_json else output, feedback_table)

    @group.command("status")
    @reports_errors
    def set_status(ctx: typer.Context,
                   entry_id: Annotated[str, typer.Argument(help="Feedback id.")],
                   status: Annotated[str, typer.Argument(help="new, triaged or resolved.")],
                   output: OutputOpt = Format.TABLE) -> None:
        """Triage an entry (Operators and Admins)."""
        with _state(ctx).client() as client:
            entry = client.set_feedback_status(entry_id, status)
        emit(entry, output, lambda e: f"{escape(e['id'])} is {e['status']}")

    return group
