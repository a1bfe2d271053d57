"""`mcpaas login`: a credential for later commands, saved where they look for it.

Two ways (issue 13 item 5): a local token minted with the platform's own signing key
(`--user`, `--role`; `cli.auth.mint_local`), or, for an Entra ID-secured control plane,
an access token from a device-code sign-in (`--entra`; `cli.auth.device_code_token`).
Either is saved to `<data dir>/cli-token` (mode 0600), which every later command sends.
An Entra token is never printed; a local one is (that is what `login` is for locally).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import auth as cli_auth
from cli import render
from cli.errors import CliError, SpecError
from cli.output import Format, OutputOpt, emit
from cli.state import CliState
from shared.auth.principal import Role
from shared.settings import get_settings

UserOpt = Annotated[str | None, typer.Option(help="Local user name (the token's subject).")]
RoleOpt = Annotated[list[Role] | None, typer.Option(help="Role to grant (repeatable; local tokens).")]
GroupOpt = Annotated[list[str] | None, typer.Option(help="Team the user belongs to (repeatable; local tokens).")]
DataDirOpt = Annotated[Path | None, typer.Option(help="Data directory where the token is saved (default: "
                                                 "MCPAAS_DATA_DIR, else ./.mcpaas); local tokens are signed with "
                                                 "its key.", show_default=False)]
HoursOpt = Annotated[float, typer.Option(min=0.01, max=24 * 30, help="Local token lifetime in hours.")]
SaveOpt = Annotated[bool, typer.Option(help="Save the token for later mcpaas commands.")]
EntraOpt = Annotated[bool, typer.Option("--entra", help="Sign in to Entra ID with a device code instead.")]
TenantOpt = Annotated[str | None, typer.Option(help="Entra tenant id or domain (MCPAAS_ENTRA_TENANT_ID).")]
ClientIdOpt = Annotated[str | None, typer.Option(help="The CLI's public client app id (MCPAAS_ENTRA_CLI_CLIENT_ID).")]
ScopeOpt = Annotated[str | None, typer.Option(help="API scope, e.g. api://mcpaas/.default (MCPAAS_ENTRA_CLI_SCOPE).")]


def login(ctx: typer.Context, user: UserOpt = None, role: RoleOpt = None, group: GroupOpt = None,
          data_dir: DataDirOpt = None, hours: HoursOpt = 8.0, save: SaveOpt = True, entra: EntraOpt = False,
          tenant: TenantOpt = None, client_id: ClientIdOpt = None, scope: ScopeOpt = None,
          output: OutputOpt = Format.TABLE) -> None:
    """Get a credential for later commands: a local token (--user, --role) or an Entra ID sign-in (--entra)."""
    directory = data_dir or get_settings().data_dir
    if entra:
        _entra(ctx.ensure_object(CliState), directory, save, tenant, client_id, scope, output)
        return
    if not user or not role:
        raise SpecError("name --user and --role for a local token (e.g. `mcpaas login --user dana --role "
                        "Developer`), or sign in to Entra ID with `mcpaas login --entra`")
    token = cli_auth.mint_local(directory, user, role, groups=group or [], lifetime_s=int(hours * 3600))
    saved = str(cli_auth.save_token(directory, token)) if save else None
    if output is Format.TABLE:
        typer.echo(token)  # alone on stdout, so `$(mcpaas login ...)` captures it
        if saved:
            render.err().print(f"Saved for later mcpaas commands in {saved}")
        return
    emit({"token": token, "user": user, "roles": [r.value for r in role], "groups": group or [],
          "expires_in_s": int(hours * 3600), "saved": saved}, output, str)


def _entra(state: CliState, directory: Path, save: bool, tenant: str | None, client_id: str | None,
           scope: str | None, output: Format) -> None:
    """The device-code sign-in: prompt on stderr, save the token, print what was done (not the token)."""
    settings = get_settings()
    tenant, client_id = tenant or settings.entra_tenant_id, client_id or settings.entra_cli_client_id
    scope = scope or settings.entra_cli_scope
    missing = [flag for flag, value in (("--tenant", tenant), ("--client-id", client_id), ("--scope", scope))
               if not value]
    if missing:
        raise SpecError(f"--entra needs {', '.join(missing)} (or MCPAAS_ENTRA_TENANT_ID, "
                        "MCPAAS_ENTRA_CLI_CLIENT_ID, MCPAAS_ENTRA_CLI_SCOPE)")
    if not save:
        raise SpecError("--entra never prints the token, so it must be saved: drop --no-save")
    assert tenant and client_id and scope  # narrowed by `missing` above

    def prompt(uri: str, code: str, expires: datetime) -> None:
        render.err().print(f"To sign in, open {uri} and enter the code [bold]{code}[/] "
                           f"(before {expires:%H:%M} UTC)")

    try:
        token = cli_auth.device_code_token(tenant, client_id, scope, prompt, transport=state.azure_transport)
    except cli_auth.SignInError as error:
        raise CliError(f"Entra ID sign-in failed: {error}") from None
    saved = str(cli_auth.save_token(directory, token.token))
    expires = datetime.fromtimestamp(token.expires_on, timezone.utc).isoformat(timespec="seconds")
    facts: dict[str, Any] = {"mode": "entra", "tenant": tenant, "client_id": client_id, "scope": scope,
                             "expires_on": expires, "saved": saved}
    emit(facts, output, lambda f: f"Signed in to tenant {f['tenant']}; the token (valid until {f['expires_on']}) "
                                  f"is saved for later mcpaas commands in {f['saved']}")
