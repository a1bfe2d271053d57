"""`mcpaas runbook`, `mcpaas checklist` and `mcpaas feedback` (issue 14: FR-009..FR-012;
docs/runbooks.md). Wiring and output only: the control plane renders and evaluates."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli import render
from cli.errors import CliError
from cli.state import CliState

ROLES = ("platform-engineer", "developer", "sre", "security-officer")
SCENARIOS = ("first-deploy", "modernization", "security-hardening", "incident-response", "cost-review")
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON.")]


def _state(ctx: typer.Context) -> CliState:
    return ctx.ensure_object(CliState)


def runbook(ctx: typer.Context,
            role: Annotated[str | None, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = None,
            scenario: Annotated[str | None, typer.Option(help=f"One of: {', '.join(SCENARIOS)}.")] = None,
            server: Annotated[str | None, typer.Option(help="Fill in this server's real values.")] = None,
            runbook_id: Annotated[str | None, typer.Option("--id", help="Only this runbook.")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="List runbook metadata instead.")] = False) -> None:
    """Print the runbook for a role and scenario as executable Markdown (or list runbooks with --json)."""
    params = {key: value for key, value in {"role": role, "scenario": scenario, "server": server,
                                            "id": runbook_id}.items() if value}
    with _state(ctx).client() as client:
        if as_json:
            typer.echo(json.dumps({"items": client.runbooks(params)}, indent=2))
            return
        if not role or not scenario:
            raise CliError("name a --role and a --scenario (or --json to list the runbooks)")
        typer.echo(client.runbook(params), nl=False)


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
              as_json: AsJson = False) -> None:
    """Show a server's best-practice checklist and readiness score; mark manual items."""
    marks = [{"id": item, "checked": True, "note": note} for item in check or []] + [
        {"id": item, "checked": False, "note": note} for item in uncheck or []]
    with _state(ctx).client() as client:
        body = client.checklist(name, marks)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
    else:
        render.out().print(checklist_table(body))


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
            text: Annotated[str, typer.Option(help="What to improve.")] = "") -> None:
        """Rate an artifact; you are the author (from your credential)."""
        with _state(ctx).client() as client:
            entry = client.post_feedback({"artifact_kind": kind, "artifact_id": artifact, "rating": rating,
                                          "text": text})
        render.out().print(f"Recorded feedback {escape(entry['id'])} ({entry['status']})")

    @group.command("list")
    @reports_errors
    def list_(ctx: typer.Context,
              kind: Annotated[str | None, typer.Option(help="runbook, template or catalog.")] = None,
              artifact: Annotated[str | None, typer.Option("--id", help="Only this artifact.")] = None,
              status: Annotated[str | None, typer.Option(help="new, triaged or resolved.")] = None,
              as_json: AsJson = False) -> None:
        """List feedback newest first."""
        params = {key: value for key, value in {"artifact_kind": kind, "artifact_id": artifact,
                                                "status": status}.items() if value}
        with _state(ctx).client() as client:
            items = client.list_feedback(params)
        if as_json:
            typer.echo(json.dumps({"items": items}, indent=2))
            return
        table = Table()
        for column in ("id", "artifact", "rating", "status", "author", "text"):
            table.add_column(column)
        for item in items:
            table.add_row(escape(item["id"]), escape(f"{item['artifact_kind']}:{item['artifact_id']}"),
                          str(item["rating"]), item["status"], escape(item["author"]), escape(item["text"]))
        render.out().print(table)

    @group.command("status")
    @reports_errors
    def set_status(ctx: typer.Context,
                   entry_id: Annotated[str, typer.Argument(help="Feedback id.")],
                   status: Annotated[str, typer.Argument(help="new, triaged or resolved.")]) -> None:
        """Triage an entry (Operators and Admins)."""
        with _state(ctx).client() as client:
            entry = client.set_feedback_status(entry_id, status)
        render.out().print(f"{escape(entry['id'])} is {entry['status']}")

    return group
