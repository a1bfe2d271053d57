"""`mcpaas costs`: token usage and cost drivers from the control plane's cost events
(issue 12 item 1, FR-026; docs/costs-and-quota.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cli.output import Format, OutputOpt, emit
from cli.state import CliState

METRICS = ("calls", "input_tokens", "output_tokens", "total_tokens", "errors", "latency_ms")


def costs_table(body: dict[str, Any]) -> Table | str:
    """The rows of `GET /api/costs` as a table: the group fields, then the metrics."""
    if not body["items"]:
        return "No tool calls in that range."
    table = Table(title=f"costs {body['since'][:19]} .. {body['until'][:19]} UTC")
    for column in (*body["group_by"], *METRICS):
        table.add_column(column, justify="right" if column in METRICS else "left")
    for row in body["items"]:
        table.add_row(*(str(row[column]) for column in (*body["group_by"], *METRICS)))
    return table


def costs(ctx: typer.Context,
          group_by: Annotated[str, typer.Option("--by", help="Comma-separated: server, actor, tool, day, "
                                                "model, scope (\"\" for one total).")] = "server",
          since: Annotated[str | None, typer.Option(help="ISO-8601 start (default: 30 days before --until).")] = None,
          until: Annotated[str | None, typer.Option(help="ISO-8601 end (default: now).")] = None,
          server: Annotated[str | None, typer.Option(help="Only this server (needed unless Operator/Admin).")] = None,
          actor: Annotated[str | None, typer.Option(help="Only this caller.")] = None,
          tool: Annotated[str | None, typer.Option(help="Only this tool.")] = None,
          model: Annotated[str | None, typer.Option(help="Only this model deployment.")] = None,
          as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (for a spreadsheet).")] = False,
          output: OutputOpt = Format.TABLE) -> None:
    """Show tool calls, estimated tokens and errors grouped by server, caller, tool or day."""
    params = {key: value for key, value in {"group_by": group_by, "since": since, "until": until,
                                            "server": server, "actor": actor, "tool": tool,
                                            "model": model}.items() if value is not None}
    with ctx.ensure_object(CliState).client() as client:
        body = client.get_costs(params, csv=as_csv)
    if isinstance(body, str):
        typer.echo(body, nl=False)
    else:
        emit(body, output, costs_table)
