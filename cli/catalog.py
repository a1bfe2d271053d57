"""`mcpaas catalog list|search|show|install|import` (UC7, FR-007; docs/catalog.md).

Reads go to the control plane (`GET /api/catalog`); `install` turns an entry's ready spec
into a deploy, asking for the entry's required secrets and settings (prompt, or
`--secret NAME=VALUE` / `--env NAME=VALUE`) and sending secrets write-only; `import` maps
MCP registry entries (`shared.catalog.from_registry`) into catalog folders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer
import yaml
from rich.markup import escape
from rich.table import Table

from cli import specs
from cli.errors import CliError, SpecError
from cli.output import Format, OutputOpt, emit
from cli.state import CliState
from shared import catalog as entries
from shared.errors import MCPaaSError

OFFICIAL_REGISTRY = "https://registry.modelcontextprotocol.io"
REGISTRY_PATHS = ("/v0.1/servers", "/v0/servers")
Deploy = Callable[[CliState, Any, bool, float], dict[str, Any] | None]


def entries_table(items: list[dict[str, Any]]) -> Table | str:
    """Table of catalog summaries: name, title, version, transport, session mode, secrets, tags."""
    if not items:
        return "No catalog entries match."
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "TITLE", "VERSION", "TRANSPORT", "SESSION", "SECRETS", "TAGS", "UPDATED"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(*(escape(value) for value in (
            item["name"], item["title"], item["version"] or "-", item["transport"], item["session_mode"] or "-",
            ", ".join(secret["name"] for secret in item["secrets"]) or "-", ", ".join(item["tags"]) or "-",
            item["last_updated"])))
    return table


def entry_details(entry: dict[str, Any]) -> Table:
    """Two-column view of one entry, its spec as YAML last."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")

    def variables(group: str) -> str:
        return "; ".join(f"{var['name']}{'' if var['required'] else ' (optional)'}" for var in entry[group]) or "-"

    for label, value in (("name", entry["name"]), ("title", entry["title"]), ("description", entry["description"]),
                         ("version", entry["version"] or "-"), ("license", entry["license"] or "-"),
                         ("repository", entry["repository"] or "-"), ("last updated", entry["last_updated"]),
                         ("transport", entry["transport"]), ("session mode", entry["session_mode"] or "-"),
                         ("env", variables("env")), ("secrets", variables("secrets")),
                         ("tags", ", ".join(entry["tags"]) or "-"), ("registry name", entry["registry_name"] or "-"),
                         ("source", entry["source"]),
                         ("spec", yaml.safe_dump(entry["spec"], sort_keys=False).rstrip())):
        table.add_row(label, escape(str(value)))
    return table


def _pairs(pairs: list[str], flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"{flag} expects NAME=VALUE, got {pair!r}")
        found[key] = value
    return found


def _ask(entry: dict[str, Any], group: str, given: dict[str, str], present: dict[str, Any]) -> dict[str, str]:
    """Values for the entry's variables of `group`: given, else prompted when required and unset."""
    known = {var["name"] for var in entry[group]}
    unknown = sorted(set(given) - known)
    if unknown:
        raise SpecError(f"{', '.join(unknown)} not among the {group} of {entry['name']} "
                        f"({', '.join(sorted(known)) or 'it has none'}); see `mcpaas catalog show {entry['name']}`")
    values = dict(given)
    for var in entry[group]:
        if var["name"] in values or var["name"] in present or not var["required"]:
            continue
        hint = f" ({var['description']})" if var["description"] else ""
        values[var["name"]] = typer.prompt(f"{var['name']}{hint}", hide_input=group == "secrets", err=True)
    return values


def install_spec(entry: dict[str, Any], name: str | None, secrets: dict[str, str],
                 env: dict[str, str]) -> Any:
    """The entry's spec named `name`, with `env` merged and `secrets` as write-only values;
    required secrets and settings not given are prompted for. Raises SpecError."""
    data = json.loads(json.dumps(entry["spec"]))  # a deep copy
    if name:
        data["name"] = name
    source = data.get(data["kind"]) if data["kind"] in ("package", "container") else None
    if (entry["secrets"] or entry["env"] or secrets or env) and source is None:
        raise SpecError(f"entry {entry['name']} is a {data['kind']} server, which takes no settings or secrets")
    if source is not None:
        source["env"] = {**source.get("env", {}), **_ask(entry, "env", env, source.get("env", {}))}
        asked = _ask(entry, "secrets", secrets, {})
        source["secrets"] = {**source.get("secrets", {}), **{key: {"value": value} for key, value in asked.items()}}
    return specs.validate_spec(data)


def read_registry(source: str, registry: str, transport: httpx.BaseTransport | None = None) -> Any:
    """The JSON at `source`: a file, or a URL of the registry API at `registry` (its
    ``/v0.1/servers`` or ``/v0/servers`` paths only; nothing else is fetched). Raises CliError."""
    if "://" not in source:
        try:
            return json.loads(Path(source).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CliError(f"cannot read {source}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise CliError(f"{source} is not JSON: {exc}") from exc
    url, base = urlsplit(source), urlsplit(registry.rstrip("/"))
    if (url.scheme, url.netloc) != (base.scheme, base.netloc) or not url.path.startswith(REGISTRY_PATHS):
        raise CliError(f"{source} is not a registry API URL under {registry}{REGISTRY_PATHS[0]}; "
                       "pass --registry BASE for another registry, or download the file first")
    try:
        with httpx.Client(transport=transport, timeout=30.0, follow_redirects=False) as http:
            response = http.get(source, headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise CliError(f"fetching {source} failed: {exc}") from exc


def catalog_app(reports_errors: Callable[[Callable[..., Any]], Callable[..., Any]], deploy: Deploy) -> typer.Typer:
    """The `catalog` command group; `deploy(state, spec, no_wait, timeout)` installs a spec."""
    group = typer.Typer(help="Browse, install and import catalog servers.", no_args_is_help=True)
    _browse_commands(group, reports_errors)
    _install_commands(group, reports_errors, deploy)
    return group


def _browse_commands(group: typer.Typer, reports_errors: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """`catalog list|search|show`: read-only views of the control plane's catalog."""

    @group.command("list")
    @reports_errors
    def list_entries(ctx: typer.Context, output: OutputOpt = Format.TABLE) -> None:
        """List every catalog entry."""
        with ctx.ensure_object(CliState).client() as client:
            emit(client.catalog(), output, entries_table)

    @group.command("search")
    @reports_errors
    def search(ctx: typer.Context, query: Annotated[str, typer.Argument(help="Words that must all match.")],
               output: OutputOpt = Format.TABLE) -> None:
        """Entries whose name, title, description or tags contain every word of QUERY."""
        with ctx.ensure_object(CliState).client() as client:
            emit(client.catalog(query), output, entries_table)

    @group.command("show")
    @reports_errors
    def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Entry name.")],
             output: OutputOpt = Format.TABLE) -> None:
        """One entry: its facts, required settings and secrets, and its ready spec."""
        with ctx.ensure_object(CliState).client() as client:
            emit(client.catalog_entry(name), output, entry_details)


def _install_commands(group: typer.Typer, reports_errors: Callable[[Callable[..., Any]], Callable[..., Any]],
                      deploy: Deploy) -> None:
    """`catalog install|import`: deploy an entry, or write registry entries as catalog entries."""

    @group.command("install")
    @reports_errors
    def install(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Entry name.")],
                server: Annotated[str | None, typer.Option("--as", help="Server name (default: the entry's).")] = None,
                secret: Annotated[list[str] | None, typer.Option(help="NAME=VALUE of a secret (repeatable); "
                                                                "required ones not given are prompted for.")] = None,
                env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE of a setting (repeatable).")] = None,
                no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once accepted.")] = False,
                timeout: Annotated[float, typer.Option(help="Seconds to wait for the deploy.")] = 180.0,
                output: OutputOpt = Format.TABLE) -> None:
        """Deploy a catalog entry (asks for its required secrets) and wait until it runs."""
        state = ctx.ensure_object(CliState)
        with state.client() as client:
            entry = client.catalog_entry(name)
        spec = install_spec(entry, server, _pairs(secret or [], "--secret"), _pairs(env or [], "--env"))
        final = deploy(state, spec, no_wait, timeout)
        result = {"name": spec.name, "entry": name, "status": (final or {}).get("status", "Accepted"),
                  "endpoint": (final or {}).get("endpoint")}
        emit(result, output, lambda r: f"[green]✓[/] {escape(r['name'])} ({escape(name)}) is {r['status']}"
                                       f" at {escape(r['endpoint'] or '(pending)')}\n"
                                       f"Connect a client: mcpaas connect {escape(r['name'])} --client vscode")

    @group.command("import")
    @reports_errors
    def import_entries(source: Annotated[str, typer.Argument(help="A server.json file, a /v0.1/servers answer "
                                                             "saved to a file, or a registry API URL.")],
                       name: Annotated[str | None, typer.Option(help="Server name (one entry only).")] = None,
                       directory: Annotated[Path | None, typer.Option("--dir", help="Catalog directory to write "
                                                                      "(default: DATA_DIR/catalog, which the "
                                                                      "local platform lists).")] = None,
                       data_dir: Annotated[Path, typer.Option(help="Data directory of the local platform.")]
                       = Path(".mcpaas"),
                       registry: Annotated[str, typer.Option(help="Registry base URL a URL source must be under.")]
                       = OFFICIAL_REGISTRY,
                       output: OutputOpt = Format.TABLE) -> None:
        """Import MCP registry entries (server.json, registry API v0.1) as catalog entries."""
        try:
            documents = entries.registry_documents(read_registry(source, registry))
            if name and len(documents) != 1:
                raise SpecError(f"--name needs exactly one entry; {source} holds {len(documents)}")
            mapped = [entries.from_registry(document, name) for document in documents]
        except MCPaaSError as exc:
            raise CliError(f"cannot import {source}: {exc}", exc.extensions.get("errors")) from exc
        target = directory or data_dir / "catalog"
        written = [{"name": spec.name, "registry_name": meta.registry_name, "version": meta.version,
                    "path": str(entries.write_entry(target, meta, spec))} for meta, spec in mapped]
        emit(written, output, _imported_table)


def _imported_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", title="Imported (install with "
                                                                     "`mcpaas catalog install NAME`)")
    for column in ("NAME", "REGISTRY NAME", "VERSION", "PATH"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(row[key] or "-") for key in ("name", "registry_name", "version", "path")))
    return table
