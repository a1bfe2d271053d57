"""The `mcpaas` typer app: argument parsing and wiring only.

Behaviour lives by noun: HTTP in `cli.api`, specs in `cli.specs`, polling in
`cli.wait`, output in `cli.render`, the local platform in `cli.platform`.
"""

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, overload

import typer

from cli import auth as cli_auth
from cli import login as sign_in
from cli import bundle as bundles
from cli.dev import dev_command
from cli import queue as deploy_queue
from cli import render, specs
from cli import runbooks as guidance
from cli import connect as clients
from cli import everyday
from cli import init as scaffold
from cli.catalog import catalog_app
from cli.connect import Client
from cli.output import Format, OutputOpt, emit, requested
from cli.costs import costs
from cli.api import DEFAULT_API_URL
from cli.errors import CliError
from cli.platform import PlatformOptions, run_platform
from cli.state import CliState
from cli.wait import Poller, wait_for_delete, wait_for_deploy, wait_for_operation
from shared import keyfiles, manifests
from shared.auth.principal import AuthMode, Role
from shared.settings import get_settings

app = typer.Typer(name="mcpaas", help="Deploy, run and govern MCP servers.",
                  no_args_is_help=True, add_completion=False)


def _reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    # Typer has no app-wide exception hook; this turns CliError into a message and an
    # exit code instead of a traceback. functools.wraps keeps the signature typer reads.
    # It also notes the command's --output for the progress of waits (cli.output.requested).
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with requested(kwargs.get("output"), kwargs.get("as_json")):
                return command(*args, **kwargs)
        except CliError as error:
            render.show_error(error)
            raise typer.Exit(error.exit_code) from None
    return wrapper


def _state(ctx: typer.Context) -> CliState:
    return ctx.ensure_object(CliState)


@app.callback()
def main(ctx: typer.Context,
         api_url: Annotated[str, typer.Option("--api-url", envvar="MCPAAS_API_URL",
                                              help="Control plane base URL.")]
         = DEFAULT_API_URL,
         token: Annotated[str | None, typer.Option("--token", envvar="MCPAAS_TOKEN", show_default=False,
                                                   help="Bearer token or API key (default: the one "
                                                        "`mcpaas login` saved).")] = None) -> None:
    """MCPaaS: deploy, run and govern Model Context Protocol servers."""
    # Tests hand in a CliState (with a mock transport) as obj; keep it and set the URL.
    state = _state(ctx)
    state.api_url = api_url.rstrip("/")
    state.token = token or state.token or cli_auth.load_token(get_settings().data_dir)


DeploySpecsOpt = Annotated[list[Path] | None, typer.Option(
    "--deploy", help="Spec file to deploy once the platform is up (repeatable).")]


@app.command()
@_reports_errors
def up(port: Annotated[int, typer.Option(help="Control plane port.")] = 7071,
       gateway_port: Annotated[int, typer.Option(help="Gateway port.")] = 8080,
       data_dir: Annotated[Path, typer.Option(help="Data directory.")] = Path(".mcpaas"),
       host: Annotated[str, typer.Option(help="Interface both services bind to.")] = "127.0.0.1",
       deploy_files: DeploySpecsOpt = None) -> None:
    """Run the control plane and the gateway locally until Ctrl-C."""
    options = PlatformOptions(host=host, port=port, gateway_port=gateway_port, data_dir=data_dir)
    console = render.out()
    console.print("Starting MCPaaS (control plane and gateway)…")
    # load every spec before starting anything, so a bad file fails fast
    to_deploy = [specs.validate_spec(specs.load_spec_file(str(path), sys.stdin)) for path in deploy_files or []]

    def announce(endpoints: dict[str, str]) -> None:
        for label, value in endpoints.items():
            console.print(f"  [bold]{label:<14}[/] {value}")
        token = _local_admin_token(options.data_dir)
        state = CliState(api_url=endpoints["control plane"], token=token)
        for spec in to_deploy:
            final = _deploy(state, spec, no_wait=False, timeout=120.0)
            # soft_wrap: a token broken across lines could not be copied into a client config
            console.print(cli_auth.client_snippets(spec.name, final["endpoint"], token) if token
                          else render.connect_snippets(spec.name, final["endpoint"]), soft_wrap=True)
        console.print("MCPaaS is up. Press Ctrl-C to stop.")

    code = run_platform(options, announce)
    console.print("MCPaaS stopped.")
    raise typer.Exit(code)


def _local_admin_token(data_dir: Path) -> str | None:
    """In local auth mode, mint and save an Admin token for `up`'s own calls and print how to get more."""
    if get_settings().auth_mode is not AuthMode.LOCAL:
        return None
    token = cli_auth.mint_local(data_dir, "local-admin", [Role.ADMIN])
    saved = cli_auth.save_token(data_dir, token)
    render.out().print(f"  [bold]{'auth':<14}[/] local; an Admin token for this CLI is saved in {saved}\n"
                       f"  Other users: mcpaas login --data-dir {data_dir} --user NAME --role Developer "
                       "[--group TEAM]\n  Clients send it as the header `Authorization: Bearer <token>`.")
    return token


app.command(name="login")(_reports_errors(sign_in.login))  # local token or Entra device code (cli/login.py)


# Option types of `deploy`, named so the signature stays readable.
FileOpt = Annotated[str | None, typer.Option("-f", "--file",
                                             help="Spec file (YAML or JSON); '-' reads stdin.")]
NameOpt = Annotated[str | None, typer.Option(help="Server name (overrides the file's).")]
CommandOpt = Annotated[str | None, typer.Option(help="Command of a stdio package server.")]
ArgOpt = Annotated[list[str] | None, typer.Option("--arg", help="Argument of --command (repeatable).")]
EnvOpt = Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE for --command (repeatable).")]
RemoteOpt = Annotated[str | None, typer.Option(help="URL of an existing Streamable HTTP server.")]
DescriptionOpt = Annotated[str | None, typer.Option(help="Description (overrides the file's).")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Return once the request is accepted.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for the operation.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the Kubernetes objects a container "
                                         "spec renders to (other kinds: the validated spec) as YAML; "
                                         "nothing is sent.")]
JsonOpt = Annotated[bool, typer.Option("--json", hidden=True, help="Same as --output json.")]
QueueOpt = Annotated[bool, typer.Option("--queue", help="Enqueue a deploy request on the deploy-requests "
                                        "queue (Service Bus if MCPAAS_SERVICEBUS_NAMESPACE is set, else "
                                        "the local devhost queue) instead of calling the REST API.")]


@app.command()
@_reports_errors
def deploy(ctx: typer.Context, file: FileOpt = None, name: NameOpt = None,
           command: CommandOpt = None, arg: ArgOpt = None, env: EnvOpt = None,
           remote_url: RemoteOpt = None, description: DescriptionOpt = None,
           no_wait: NoWaitOpt = False, timeout: TimeoutOpt = 120.0, queue: QueueOpt = False,
           dry_run: DryRunOpt = False, output: OutputOpt = Format.TABLE) -> None:
    """Create or update a server and wait until it runs (`--queue`: enqueue the request and return).

    A spec file whose `package.bundle` names a directory deploys that code: it is packed,
    uploaded, and replaced by its digest (docs/bundles.md)."""
    packed = None
    if file is not None:
        if command or remote_url or arg or env:
            raise specs.SpecError("-f cannot be combined with --command/--remote-url/--arg/--env")
        data = specs.load_spec_file(file, sys.stdin)
        if name:
            data["name"] = name
        packed = bundles.resolve_bundle(data, specs.spec_base(file))
    else:
        data = specs.spec_from_flags(name, command, arg or [], env or [], remote_url)
    if description is not None:
        data["description"] = description
    spec = specs.validate_spec(data)
    if dry_run:
        typer.echo(manifests.preview_yaml(spec), nl=False)
        return
    if packed is not None:
        unchanged = _upload_bundle(_state(ctx), packed, spec)
        if unchanged is not None:  # content-addressed: the same code and spec make no new revision
            _show_final(unchanged, output)
            return
    if queue:
        _enqueue(_state(ctx), spec)
        return
    final = _deploy(_state(ctx), spec, no_wait, timeout)
    if final is not None or output is not Format.TABLE:
        _show_final(final or {"name": spec.name, "status": "Accepted"}, output)


def _upload_bundle(state: CliState, packed: bundles.Packed, spec: Any) -> dict[str, Any] | None:
    """Upload a packed project before the spec that names it is sent; returns the server
    instead when it already runs exactly `spec` (nothing uploaded, nothing to deploy)."""
    with state.client() as client:
        unchanged = bundles.unchanged_server(client, spec)
        if unchanged is not None:
            render.err().print(f"No change: {spec.name} runs bundle {packed.digest} with this spec already",
                               soft_wrap=True)
            return unchanged
        answer = bundles.upload(client, packed)
    render.err().print(f"Uploaded bundle {packed.digest} ({answer.get('files', '?')} entries, "
                       f"{len(packed.data)} bytes)", soft_wrap=True)
    return None


def _show_final(server: dict[str, Any], output: Format) -> None:
    """The outcome of a deploy or rollback: a one-line summary, or the server document."""
    emit(server, output, lambda s: f"[green]✓[/] {s['name']} is {s.get('status')} at "
                                   f"{s.get('endpoint') or '(no endpoint yet)'} (revision {s.get('revision', '?')})")


def _enqueue(state: CliState, spec: Any) -> None:
    """Send a deploy request for `spec` to the deploy-requests queue (`cli.queue`)."""
    request = deploy_queue.deploy_request(specs.spec_payload(spec))
    settings = get_settings()
    message_id = deploy_queue.enqueue_deploy(request, credential=state.token, api_url=state.api_url,
                                             transport=state.transport,
                                             namespace=settings.servicebus_namespace,
                                             host_key=keyfiles.host_key(settings, create=False))
    render.out().print(f"Enqueued deploy of [bold]{spec.name}[/] (message {message_id}); "
                       f"follow it with `mcpaas status {spec.name}`")


@overload
def _deploy(state: CliState, spec: Any, no_wait: Literal[False], timeout: float) -> dict[str, Any]: ...
@overload
def _deploy(state: CliState, spec: Any, no_wait: bool, timeout: float) -> dict[str, Any] | None: ...


def _deploy(state: CliState, spec: Any, no_wait: bool, timeout: float) -> dict[str, Any] | None:
    """Create or update `spec` (a validated ServerSpec); the final server unless `no_wait`."""
    with state.client() as client:
        exists = client.get_server(spec.name) is not None
        payload = specs.spec_payload(spec)
        accepted = client.update_server(spec.name, payload) if exists else client.create_server(payload)
        server = accepted.server or client.get_server(spec.name) or {"name": spec.name}
        verb = "update" if exists else "create"
        render.err().print(f"Accepted {verb} of [bold]{spec.name}[/] revision "
                           f"{server.get('latest_revision', '?')} (operation {accepted.operation_id or '?'})")
        if no_wait:
            return None
        return wait_for_deploy(client, server, Poller(state.sleep, state.clock, timeout))


@app.command()
@_reports_errors
def status(ctx: typer.Context,
           name: Annotated[str | None, typer.Argument(help="Server name; all servers if omitted.")] = None,
           output: OutputOpt = Format.TABLE, as_json: JsonOpt = False) -> None:
    """Show all servers, or one server with the reason for its status."""
    output = Format.JSON if as_json else output
    with _state(ctx).client() as client:
        if name is None:
            emit({"items": client.list_servers()}, output,
                 lambda body: render.servers_table(body["items"]) if body["items"]
                 else "No servers. Deploy one with `mcpaas deploy` or `mcpaas catalog install NAME`.")
            return
        server = client.get_server(name)
    if server is None:
        raise CliError(f"server {name} not found; list servers with `mcpaas status`")
    emit(server, output, render.server_details)


@app.command()
@_reports_errors
def delete(ctx: typer.Context,
           name: Annotated[str, typer.Argument(help="Server to delete.")],
           no_wait: NoWaitOpt = False, timeout: TimeoutOpt = 120.0, output: OutputOpt = Format.TABLE) -> None:
    """Delete a server and wait until it is gone."""
    state = _state(ctx)
    with state.client() as client:
        accepted = client.delete_server(name)
        render.err().print(f"Accepted delete of [bold]{name}[/] (operation {accepted.operation_id or '?'})")
        if not no_wait:
            wait_for_delete(client, name, Poller(state.sleep, state.clock, timeout))
    if output is not Format.TABLE or not no_wait:
        emit({"name": name, "status": "Accepted" if no_wait else "Deleted", "operation_id": accepted.operation_id},
             output, lambda facts: f"{name} deleted (operation {facts['operation_id'] or '?'})")


@app.command()
@_reports_errors
def history(ctx: typer.Context,
            name: Annotated[str, typer.Argument(help="Server name.")],
            output: OutputOpt = Format.TABLE, as_json: JsonOpt = False) -> None:
    """List the revisions of a server with what changed in each."""
    with _state(ctx).client() as client:
        revisions = client.list_revisions(name)
    emit({"items": revisions}, Format.JSON if as_json else output,
         lambda body: render.history_table(body["items"]) if body["items"] else f"{name} has no revisions.")


@app.command()
@_reports_errors
def rollback(ctx: typer.Context,
             name: Annotated[str, typer.Argument(help="Server name.")],
             to: Annotated[int, typer.Option("--to", min=1, help="Revision whose spec to re-apply.")],
             no_wait: NoWaitOpt = False, timeout: TimeoutOpt = 120.0, output: OutputOpt = Format.TABLE) -> None:
    """Re-apply an earlier revision's spec as a new revision and wait until it runs."""
    state = _state(ctx)
    with state.client() as client:
        accepted = client.rollback_server(name, to)
        server = accepted.server or client.get_server(name) or {"name": name}
        render.err().print(f"Accepted rollback of [bold]{name}[/] to revision {to} as revision "
                           f"{server.get('latest_revision', '?')} (operation {accepted.operation_id or '?'})")
        final = server if no_wait else wait_for_deploy(client, server, Poller(state.sleep, state.clock, timeout))
    if output is not Format.TABLE or not no_wait:
        _show_final(final, output)


@app.command()
@_reports_errors
def provision(ctx: typer.Context,
              file: Annotated[str, typer.Option("-f", "--file", help="ControlPlaneSpec file (YAML or JSON).")],
              no_wait: NoWaitOpt = False,
              timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 3600.0,
              output: OutputOpt = Format.TABLE) -> None:
    """Provision the Azure control plane (resource group, AKS, ACR, gateway); run it again to resume."""
    state = _state(ctx)
    spec = specs.load_spec_file(file, sys.stdin)
    with state.client() as client:
        accepted = client.provision(spec)
        render.err().print(f"Accepted provision (operation {accepted.operation_id})")
        if no_wait:
            if output is not Format.TABLE:
                emit({"status": "Accepted", "operation_id": accepted.operation_id}, output, str)
            return
        operation = wait_for_operation(client, str(accepted.operation_id), Poller(state.sleep, state.clock, timeout),
                                       "provisioning the control plane")
    result = operation.get("output") or {}
    if result.get("status") != "Succeeded":
        raise CliError(f"provision failed at step {result.get('failed_step')!r}: {result.get('reason')} "
                       "(fix it and run `mcpaas provision` again to resume)")
    emit({**result, "operation_id": accepted.operation_id}, output, lambda _: "[green]✓[/] control plane provisioned")


ClientOpt = Annotated[Client | None, typer.Option("--client", help="Print that client's own configuration "
                                                 "(default: VS Code and Python snippets).")]
WriteOpt = Annotated[bool, typer.Option("--write", help="Merge the entry into the client's config file "
                                        "(other entries are kept).")]
ConfigPathOpt = Annotated[Path | None, typer.Option("--path", help="Config file to write (default: the client's).")]
NewKeyOpt = Annotated[bool, typer.Option("--new-key", help="Put a new API key limited to this server in the config "
                                         "instead of your CLI token (needs keys.manage).")]


@app.command()
@_reports_errors
def connect(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Server name.")],
            client: ClientOpt = None, write: WriteOpt = False, path: ConfigPathOpt = None,
            new_key: NewKeyOpt = False, output: OutputOpt = Format.TABLE) -> None:
    """Print, or merge into its config file, an MCP client's configuration for a running server."""
    state = _state(ctx)
    with state.client() as api:
        endpoint = clients.endpoint_of(api.get_server(name), name)
        credential = clients.credential_for(api, name, client, state.token, new_key)
    if client is None:
        render.out().print(cli_auth.client_snippets(name, endpoint, credential) if credential
                           else render.connect_snippets(name, endpoint), soft_wrap=True)
        return
    config = clients.client_config(client, name, endpoint, credential, path)
    facts: dict[str, Any] = {"server": name, "client": client.value, "url": endpoint, "path": str(config.path)}
    if write:
        facts["replaced"] = clients.merge(config)
        emit(facts, output, lambda f: f"{'Updated' if f['replaced'] else 'Added'} {name} in {f['path']}")
    elif output is Format.TABLE:
        typer.echo(config.text(), nl=False)  # the client's own format, ready to paste
    else:
        emit({**facts, "config": config.document()}, output, str)


app.command(name="costs")(_reports_errors(costs))  # issue 12: FR-026 (cli/costs.py)
app.command(name="runbook")(_reports_errors(guidance.runbook))  # issue 14: FR-009..FR-012 (cli/runbooks.py)
app.command(name="checklist")(_reports_errors(guidance.checklist))
app.add_typer(guidance.feedback_app(_reports_errors), name="feedback")
app.add_typer(catalog_app(_reports_errors, _deploy), name="catalog")  # issue 13: FR-007 (cli/catalog.py)
everyday.register(app, _reports_errors)  # issue 13 item 5: logs, events, audit, keys, shares (cli/everyday.py)
app.command(name="init")(_reports_errors(scaffold.init))  # issue 13 item 1: project scaffold (cli/init.py)
app.command(name="dev")(_reports_errors(dev_command(_state, _deploy)))  # issue 13 item 2 (cli/dev.py, docs/bundles.md)
