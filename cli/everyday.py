"""Everyday read commands (issue 13 item 5): `logs`, `events`, `audit`, `keys`, `shares`.

Each is one control-plane read (`GET /api/servers/{name}/logs|events|shares`,
`/api/audit`, `/api/keys`) printed with `--output table|json|yaml` (`cli.output`).
`keys create|revoke` are the only writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from cli.output import Format, OutputOpt, emit
from cli.state import CliState
from shared.auth.principal import Role

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def rows_table(columns: dict[str, Callable[[dict[str, Any]], Any]], empty: str) -> Callable[[dict[str, Any]], Any]:
    """A table renderer for `{"items": [...]}`: one column per `columns` key, cell = getter(item)."""
    def render(body: dict[str, Any]) -> Table | str:
        if not body["items"]:
            return empty
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for item in body["items"]:
            table.add_row(*(escape(str(get(item) if get(item) is not None else "-")) for get in columns.values()))
        return table
    return render


def _get(ctx: typer.Context, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    with ctx.ensure_object(CliState).client() as client:
        return client.read(path, params)


def _server(name: str) -> str:
    return f"/api/servers/{quote(name, safe='')}"


def register(app: typer.Typer, wrap: Wrap) -> None:
    """Add the everyday commands to `app`, each wrapped by `wrap` (error reporting)."""
    _server_views(app, wrap)
    _audit_command(app, wrap)
    app.add_typer(_keys_app(wrap), name="keys")


def _server_views(app: typer.Typer, wrap: Wrap) -> None:
    """`logs`, `events` and `shares` of one server."""

    @app.command()
    @wrap
    def logs(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Server name.")],
             tail: Annotated[int, typer.Option(min=0, max=10000, help="Newest lines to show.")] = 100,
             since: Annotated[str | None, typer.Option(help="ISO-8601 time of the oldest line.")] = None,
             follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines "
                                                  "(polls every 2 s) until Ctrl-C.")] = False,
             output: OutputOpt = Format.TABLE) -> None:
        """Print a server's logs: its stdio children's stderr, or its pods' logs."""
        state = ctx.ensure_object(CliState)
        body = _get(ctx, f"{_server(name)}/logs", {"tail": tail, "since": since})
        emit(body, output, lambda b: "\n".join(b["lines"]) or f"{name} has no log lines yet.")
        seen = list(body["lines"])
        while follow:
            state.sleep(2.0)
            lines = _get(ctx, f"{_server(name)}/logs", {"tail": 1000, "since": since})["lines"]
            fresh = _after(seen, lines)
            if fresh:
                emit({"name": name, "lines": fresh}, output, lambda b: "\n".join(b["lines"]))
                seen = lines

    @app.command()
    @wrap
    def events(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Container server name.")],
               limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest events to show.")] = 50,
               output: OutputOpt = Format.TABLE) -> None:
        """Kubernetes events of a container server's objects and pods, newest first."""
        emit(_get(ctx, f"{_server(name)}/events", {"limit": limit}), output, rows_table(
            {"TIME": lambda e: e.get("time"), "TYPE": lambda e: e.get("type"), "REASON": lambda e: e.get("reason"),
             "OBJECT": lambda e: e.get("object"), "COUNT": lambda e: e.get("count"),
             "MESSAGE": lambda e: e.get("message")}, f"No events for {name}."))

    @app.command()
    @wrap
    def shares(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Server name.")],
               output: OutputOpt = Format.TABLE) -> None:
        """Who besides the owner team may use or manage a server (FR-018)."""
        emit(_get(ctx, f"{_server(name)}/shares"), output, rows_table(
            {"KIND": lambda s: s["kind"], "VALUE": lambda s: s["value"],
             "PERMISSIONS": lambda s: ", ".join(s["permissions"])}, f"{name} is not shared."))


def _audit_command(app: typer.Typer, wrap: Wrap) -> None:
    """`audit`: the control plane's audit trail, paged."""

    @app.command()
    @wrap
    def audit(ctx: typer.Context,
              actor: Annotated[str | None, typer.Option(help="Only this caller.")] = None,
              server: Annotated[str | None, typer.Option(help="Only this entity (a server name).")] = None,
              action: Annotated[str | None, typer.Option(help="Only this action, e.g. server.create.")] = None,
              since: Annotated[str | None, typer.Option(help="ISO-8601 start.")] = None,
              until: Annotated[str | None, typer.Option(help="ISO-8601 end.")] = None,
              limit: Annotated[int, typer.Option(min=1, max=500, help="Entries per page.")] = 50,
              cursor: Annotated[str | None, typer.Option(help="`next` of the previous page.")] = None,
              output: OutputOpt = Format.TABLE) -> None:
        """The audit trail, newest first (Operators and Admins)."""
        body = _get(ctx, "/api/audit", {"actor": actor, "server": server, "action": action, "since": since,
                                        "until": until, "limit": limit, "cursor": cursor})
        table = rows_table({"TIME": lambda e: str(e.get("time", ""))[:19], "ACTOR": lambda e: e.get("actor"),
                            "ACTION": lambda e: e.get("action"), "ENTITY": lambda e: e.get("entity"),
                            "RESULT": lambda e: e.get("result"), "DETAIL": lambda e: e.get("detail")},
                           "No audit entries match.")
        emit(body, output, lambda b: _paged(table(b), b.get("next")))


def _after(seen: list[str], lines: list[str]) -> list[str]:
    """The lines of `lines` after the last one of `seen` (all of them when it is gone)."""
    if not seen:
        return lines
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] == seen[-1]:
            return lines[index + 1:]
    return lines


def _paged(table: Any, next_cursor: str | None) -> Any:
    if not next_cursor or isinstance(table, str):
        return table
    table.caption = f"more: --cursor {next_cursor}"
    return table


KEY_COLUMNS = {"ID": lambda k: k["id"], "NAME": lambda k: k["name"], "ROLES": lambda k: ", ".join(k["roles"]),
               "SERVERS": lambda k: ", ".join(k["servers"]) if k.get("servers") else "all",
               "EXPIRES": lambda k: k.get("expires_at"), "REVOKED": lambda k: str(k["revoked"]).lower(),
               "CREATED BY": lambda k: k["created_by"]}


def _keys_app(wrap: Wrap) -> typer.Typer:
    keys = typer.Typer(help="API keys for clients and automation (Admins).", no_args_is_help=True)

    @keys.command("list")
    @wrap
    def list_keys(ctx: typer.Context, output: OutputOpt = Format.TABLE) -> None:
        """Every API key record, newest first (never the keys themselves)."""
        emit(_get(ctx, "/api/keys"), output, rows_table(KEY_COLUMNS, "No API keys."))

    @keys.command("create")
    @wrap
    def create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A label for the key.")],
               role: Annotated[list[Role], typer.Option(help="Role of the key (repeatable).")],
               server: Annotated[list[str] | None, typer.Option(help="Limit to this server (repeatable).")] = None,
               expires_at: Annotated[str | None, typer.Option(help="ISO-8601 expiry.")] = None,
               output: OutputOpt = Format.TABLE) -> None:
        """Create an API key; it is printed once, here."""
        request = {"name": name, "roles": [r.value for r in role], "servers": server or None, "expires_at": expires_at}
        with ctx.ensure_object(CliState).client() as client:
            created = client.create_key({k: v for k, v in request.items() if v is not None})
        emit(created, output, lambda c: f"{c['key']}\n(shown once; key id {c['record']['id']}, "
                                        f"revoke with `mcpaas keys revoke {c['record']['id']}`)")

    @keys.command("revoke")
    @wrap
    def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="Key id (see `keys list`).")],
               output: OutputOpt = Format.TABLE) -> None:
        """Revoke an API key at once."""
        with ctx.ensure_object(CliState).client() as client:
            record = client.revoke_key(key_id)
        emit(record, output, lambda r: f"key {r['id']} ({r['name']}) revoked")

    return keys
