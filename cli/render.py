"""How the CLI shows things: errors, server tables, server details, revision history.

Consoles are made per call so they pick up the current stdout/stderr and `COLUMNS`
(CliRunner swaps both during tests). User-supplied text is escaped so a `[`
in a name or reason is not read as rich markup.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import CliError

STATUS_STYLE = {"Running": "green", "Error": "red", "Pending": "yellow",
                "Deploying": "cyan", "Stopped": "dim"}
MAX_DIFF_ENTRIES = 3


def out() -> Console:
    """Console on stdout (results)."""
    return Console(highlight=False)


def err() -> Console:
    """Console on stderr (errors and progress)."""
    return Console(stderr=True, highlight=False)


def show_error(error: CliError) -> None:
    """Print `error` and its field errors to stderr."""
    console = err()
    console.print(f"[bold red]Error:[/] {escape(error.message)}")
    for field_error in error.errors:
        field = field_error.get("field") or "(body)"
        console.print(f"  [bold]{escape(field)}[/]: {escape(field_error.get('message', ''))}")


def status_text(status: str | None) -> str:
    """Markup for a status value, coloured by health."""
    value = status or "?"
    return f"[{STATUS_STYLE.get(value, 'white')}]{escape(value)}[/]"


def servers_table(servers: list[dict[str, Any]]) -> Table:
    """Table of servers: name, kind, status, revision, endpoint."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "KIND", "STATUS", "REVISION", "ENDPOINT"):
        table.add_column(column, overflow="fold")
    for server in sorted(servers, key=lambda s: s.get("name", "")):
        table.add_row(escape(str(server.get("name", ""))),
                      escape(str((server.get("spec") or {}).get("kind", ""))),
                      status_text(server.get("status")),
                      revision_text(server),
                      escape(server.get("endpoint") or "-"))
    return table


def revision_text(server: dict[str, Any]) -> str:
    """`3`, or `3 (→4)` while a newer revision is being applied."""
    revision, latest = server.get("revision", 0), server.get("latest_revision", 0)
    return f"{revision} (→{latest})" if latest and latest != revision else str(revision)


def server_details(server: dict[str, Any]) -> Table:
    """Two-column view of one server, including the reason for its status."""
    spec = server.get("spec") or {}
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [("name", escape(str(server.get("name", "")))),
            ("kind", escape(str(spec.get("kind", "")))),
            ("status", status_text(server.get("status"))),
            ("reason", escape(server.get("status_reason") or "-")),
            ("revision", revision_text(server)),
            ("endpoint", escape(server.get("endpoint") or "-")),
            ("description", escape(spec.get("description") or "-")),
            ("owner team", escape(spec.get("owner_team") or "-")),
            ("enabled", str(spec.get("enabled", True)).lower()),
            ("source", escape(source_summary(spec))),
            ("operation", escape(server.get("operation_id") or "-")),
            ("updated", escape(str(server.get("updated_at") or "-")))]
    for label, value in rows:
        table.add_row(label, value)
    return table


def source_summary(spec: dict[str, Any]) -> str:
    """One line saying what runs: the argv, the image, or the remote URL."""
    kind = spec.get("kind")
    section = (spec.get(kind) if isinstance(kind, str) else None) or {}
    if kind == "package":
        return " ".join([section.get("command", ""), *section.get("args", [])]).strip()
    if kind == "container":
        return f"{section.get('image', '')} (port {section.get('port', '?')})"
    if kind == "remote":
        return str(section.get("url", ""))
    return "-"


def history_table(revisions: list[dict[str, Any]]) -> Table:
    """Table of revisions, newest first, each with a one-line diff summary."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("REV", "CREATED", "ACTOR", "OPERATION", "CHANGES"):
        table.add_column(column, overflow="fold")
    for revision in sorted(revisions, key=lambda r: r.get("number", 0), reverse=True):
        table.add_row(str(revision.get("number", "")),
                      escape(str(revision.get("created_at", ""))[:19]),
                      escape(str(revision.get("actor", ""))),
                      escape(str(revision.get("operation_id", ""))),
                      escape(diff_summary(revision.get("diff") or {})))
    return table


def diff_summary(diff: dict[str, dict[str, Any]]) -> str:
    """`path: old → new; …` for up to three changes, or `initial spec` for a first revision."""
    if not diff:
        return "no changes"
    if all(change.get("from") is None for change in diff.values()):
        return f"initial spec ({len(diff)} fields)"
    parts = [f"{path}: {_short(change.get('from'))} → {_short(change.get('to'))}"
             for path, change in list(diff.items())[:MAX_DIFF_ENTRIES]]
    if len(diff) > MAX_DIFF_ENTRIES:
        parts.append(f"(+{len(diff) - MAX_DIFF_ENTRIES} more)")
    return "; ".join(parts)


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else "∅"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def connect_snippets(name: str, endpoint: str) -> str:
    """How to connect to `endpoint`: a VS Code `mcp.json` entry and a Python `mcp` client.

    Returned as plain text (markup escaped) for a console to print.
    """
    vscode = json.dumps({"servers": {name: {"type": "http", "url": endpoint}}}, indent=2)
    python = (
        "import asyncio\n"
        "from mcp import Client\n\n"
        "async def main():\n"
        f"    async with Client({endpoint!r}) as client:\n"
        "        print([tool.name for tool in (await client.list_tools()).tools])\n\n"
        "asyncio.run(main())"
    )
    return escape(f"\n{name} is served at {endpoint}\n\nVS Code (.vscode/mcp.json):\n{vscode}\n\n"
                  f"Python (official mcp SDK):\n{python}\n")
