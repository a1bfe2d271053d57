"""`mcpaas dev [PATH]`: serve a project through the gateway and redeploy it on every change.

Reads `PATH/mcpaas.yaml` (a ServerSpec; `package.bundle` defaults to `.`, the project),
deploys it as server `<name>-dev` (so a dev loop never replaces the server of the same
name that the project deploys for real; `--name` overrides), prints the MCP endpoint and
a ready VS Code entry (`cli.connect`), then watches PATH with `watchfiles` and on each
change that the bundle would contain (`cli.bundle.Ignore`) packs, uploads and deploys
again, printing the new revision. The control plane's deploy starts a fresh child from
the new bundle, so the next call runs the edited code without restarting the command.

When nothing answers at the API URL (a local one), `dev` starts the embedded platform
(`cli.platform`: devhost and the gateway as supervised children, as `mcpaas up` does)
for its own lifetime, with a local Admin token; Ctrl-C (or SIGTERM) stops watching and
stops that platform, children and their stdio servers included. A platform that was
already running is left running, with the dev server deployed on it.
docs/bundles.md describes the loop.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import typer
import watchfiles

from cli import auth as cli_auth
from cli import bundle as bundles
from cli import connect as clients
from cli import platform
from cli import specs
from cli.errors import CliError
from cli.state import CliState
from shared.auth.principal import AuthMode, Role
from shared.models import ServerSpec
from shared.settings import get_settings

SPEC_FILES = ("mcpaas.yaml", "mcpaas.yml")
SUFFIX = "-dev"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
DEBOUNCE_MS = 300



class DeployFn(Protocol):
    """`cli.main._deploy` as dev calls it: create or update `spec`, wait, return the server."""

    def __call__(self, state: CliState, spec: Any, no_wait: Literal[False], timeout: float) -> dict[str, Any]: ...


def _say(message: str) -> None:
    """One line on stdout, flushed at once: scripts (and tests) follow the loop by it."""
    typer.echo(message)
    sys.stdout.flush()


def spec_file(project: Path) -> Path:
    """The project's spec file; CliError when it has none."""
    for candidate in SPEC_FILES:
        if (project / candidate).is_file():
            return project / candidate
    raise CliError(f"{project} has no mcpaas.yaml: create a project with `mcpaas init NAME`, "
                   "or write a ServerSpec there (docs/bundles.md)")


def dev_name(name: str) -> str:
    """`<name>-dev`, shortened to stay a DNS-1123 label of at most 63 characters."""
    return name if name.endswith(SUFFIX) else f"{name[:63 - len(SUFFIX)].rstrip('-')}{SUFFIX}"


def load(project: Path, name: str | None) -> tuple[ServerSpec, bundles.Packed]:
    """The dev spec of `project`, with its bundle packed (not uploaded yet)."""
    path = spec_file(project)
    data = specs.load_spec_file(str(path))
    package = data.get("package")
    if data.get("kind", "package") != "package" or not isinstance(package, dict):
        raise CliError(f"{path}: `mcpaas dev` serves package servers (a `package:` section with a command)")
    data["kind"] = "package"
    package.setdefault("bundle", ".")
    data["name"] = name or dev_name(str(data.get("name", project.resolve().name)))
    packed = bundles.resolve_bundle(data, path.parent)
    if packed is None:
        raise CliError(f"{path}: package.bundle must name the project directory (`bundle: .`), not a digest")
    return specs.validate_spec(data), packed


def _answers(api_url: str) -> bool:
    try:
        httpx.get(f"{api_url}/api/servers", timeout=3.0)
    except httpx.TransportError:
        return False
    return True


@contextmanager
def embedded_platform(state: CliState, gateway_port: int, data_dir: Path) -> Iterator[list[platform.Child]]:
    """Start devhost and the gateway for the API URL of `state` when nothing answers there
    (yields no children when something does); stops them on exit. Sets `state.token` to a
    local Admin token of the platform it started."""
    if _answers(state.api_url):
        yield []
        return
    url = urlsplit(state.api_url)
    if url.hostname not in LOCAL_HOSTS or url.port is None:
        raise CliError(f"nothing answers at {state.api_url}, and dev starts a platform only on a local URL "
                       "with a port (e.g. http://127.0.0.1:7071)")
    options = platform.PlatformOptions(host=url.hostname, port=url.port, gateway_port=gateway_port,
                                       data_dir=data_dir)
    _say(f"Nothing answers at {state.api_url}: starting the embedded platform (data dir {data_dir})")
    children, _ = platform.start_platform(options)
    try:
        if get_settings().auth_mode is AuthMode.LOCAL:
            state.token = cli_auth.mint_local(data_dir, "local-admin", [Role.ADMIN])
        yield children
    finally:
        platform.stop_children(children)
        _say("Embedded platform stopped.")


class DevLoop:
    """Deploys a project and redeploys it when it changes.

    Args:
        state: the CLI's state (API URL, token). project: the project directory.
        name: server name override. deploy: `cli.main._deploy` (create or update, wait).
        timeout: seconds to wait for each deploy.
    """

    def __init__(self, state: CliState, project: Path, name: str | None, deploy: DeployFn,
                 timeout: float) -> None:
        self.state, self.project, self.name = state, project, name
        self.deploy_fn, self.timeout = deploy, timeout
        self.current: ServerSpec | None = None

    def deploy(self) -> dict[str, Any] | None:
        """Pack and deploy the project unless it is what runs already; the server, or None."""
        spec, packed = load(self.project, self.name)
        if spec == self.current:
            return None
        with self.state.client() as client:
            server = bundles.unchanged_server(client, spec)
            if server is None:
                bundles.upload(client, packed)
        if server is None:
            server = self.deploy_fn(self.state, spec, False, self.timeout)
        self.current = spec
        _say(f"revision {server.get('revision')} of {spec.name} is {server.get('status')} "
             f"(bundle {packed.digest[:19]}…, {len(packed.paths)} entries)")
        return server

    def redeploy(self) -> None:
        """`deploy` after a change; an error is printed and the loop goes on."""
        try:
            self.deploy()
        except CliError as error:
            _say(f"Redeploy failed: {error.message} (fix the project and save again)")
            for field_error in error.errors:
                _say(f"  {field_error.get('field') or '(body)'}: {field_error.get('message', '')}")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind through the same cleanup as Ctrl-C


def run(state: CliState, project: Path, name: str | None, deploy: DeployFn, *, gateway_port: int,
        data_dir: Path, timeout: float) -> None:
    """The whole `mcpaas dev` command (see the module docstring); returns after Ctrl-C/SIGTERM."""
    project = project.resolve()
    ignore = bundles.Ignore(project)
    if data_dir.resolve().is_relative_to(project) and not ignore.ignored_path(data_dir):
        raise CliError(f"data dir {data_dir} lies inside the project: list it in {bundles.IGNORE_FILE} "
                       "or choose another --data-dir")
    load(project, name)  # a bad project fails before any platform starts
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Ctrl-C must stop dev (and its platform) even when it inherited SIGINT ignored, as a
    # background job of a non-interactive shell does: Python then installs no handler
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with embedded_platform(state, gateway_port, data_dir):
            loop = DevLoop(state, project, name, deploy, timeout)
            server = loop.deploy()
            assert server is not None
            endpoint = clients.endpoint_of(server, str(server.get("name")))
            config = clients.client_config(clients.Client.VSCODE, str(server["name"]), endpoint, state.token)
            _say(f"\n{server['name']} is served at {endpoint}\n\nVS Code (.vscode/mcp.json):\n{config.text()}")
            _say(f"Watching {project} for changes (Ctrl-C to stop)…")
            for _changes in watchfiles.watch(project, debounce=DEBOUNCE_MS,
                                             watch_filter=lambda _change, path: not ignore.ignored_path(path)):
                loop.redeploy()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    _say("mcpaas dev stopped.")


ProjectArg = Annotated[Path, typer.Argument(help="Project directory holding mcpaas.yaml.")]
DevNameOpt = Annotated[str | None, typer.Option("--name", help="Server name (default: the spec's name + '-dev').")]
GatewayPortOpt = Annotated[int, typer.Option(help="Gateway port of an embedded platform dev starts.")]
DataDirOpt = Annotated[Path, typer.Option(help="Data directory of an embedded platform dev starts.")]
DevTimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for each deploy.")]


def dev_command(state_of: Callable[[typer.Context], CliState], deploy: DeployFn) -> Callable[..., None]:
    """The typer command `mcpaas dev`, bound to the CLI's state and deploy functions."""

    def dev(ctx: typer.Context, path: ProjectArg = Path("."), name: DevNameOpt = None,
            gateway_port: GatewayPortOpt = 8080, data_dir: DataDirOpt = Path(".mcpaas"),
            timeout: DevTimeoutOpt = 120.0) -> None:
        """Serve a project through the gateway and redeploy it on every change, until Ctrl-C."""
        run(state_of(ctx), path, name, deploy, gateway_port=gateway_port, data_dir=data_dir, timeout=timeout)

    return dev
