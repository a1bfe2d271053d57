"""Waiting for lifecycle operations to finish by polling the server resource.

The control plane answers 202 and runs the workflow asynchronously; these loops watch
`GET /api/servers/{name}` and report status changes until a terminal state. How a wait
shows itself (issue 13 item 5) follows the running command's `--output` and the
terminal: a rich spinner with the status and elapsed time, plus a line per status
change, when stdout and stderr are terminals and the output is `table`; the status lines
alone on stderr when stdout is not a terminal (pipes, CI, tests); nothing for
`--output json|yaml`, so a script reads one document and no progress noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from cli import render
from cli.api import ControlPlane
from cli.errors import CliError
from cli.output import Format, requested_format

POLL_INTERVAL = 0.5


@dataclass
class Poller:
    """Clock and sleep used by the loops (replaced by fakes in tests)."""

    sleep: Callable[[float], None]
    clock: Callable[[], float]
    timeout: float


class Mode(str, Enum):
    """How a wait shows itself (see the module docstring)."""

    LIVE = "live"
    PLAIN = "plain"
    QUIET = "quiet"


class WaitDisplay:
    """Progress of one wait on stderr: `live` (spinner), `plain` (lines) or `quiet` (nothing).

    The mode comes from the `--output` of the command being run (`cli.output.requested`,
    set for every command by main's error-reporting wrapper, so no command threads it
    through) and from whether stdout and stderr are terminals. Use as a context manager:
    the spinner stops on exit, error or not.
    """

    def __init__(self, what: str) -> None:
        self.console: Console = render.err()
        if requested_format() is not Format.TABLE:
            self.mode = Mode.QUIET
        elif self.console.is_terminal and render.out().is_terminal:
            self.mode = Mode.LIVE
        else:
            self.mode = Mode.PLAIN
        self._status: Status | None = self.console.status(escape(what)) if self.mode is Mode.LIVE else None

    def __enter__(self) -> WaitDisplay:
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._status is not None:
            self._status.stop()

    def changed(self, status: str | None, reason: str | None) -> None:
        """A new status (markup-escaped here): one line above the spinner, or on its own."""
        self.line(f"  {render.status_text(status)}" + (f" — {escape(reason)}" if reason else ""))

    def line(self, markup: str) -> None:
        """One line of progress (rich markup), printed unless quiet."""
        if self.mode is not Mode.QUIET:
            self.console.print(markup)

    def tick(self, text: str) -> None:
        """The spinner's text after a poll (plain text); shown only in `live` mode."""
        if self._status is not None:
            self._status.update(escape(text))


def deploy_finished(server: dict[str, Any], target: int, accepted_status: str | None,
                    seen_change: bool) -> bool:
    """Whether the deploy of revision `target` has reached Running or Error.

    A server mid-update still shows the previous revision's status, so Running counts
    only once `revision` reaches `target`. `revision` stays at the last good revision
    when a deploy fails, so Error counts once `latest_revision` reached `target` and the
    Error is not a leftover from before acceptance (status changed since, or no
    workflow is in flight any more).
    """
    status = server.get("status")
    if status == "Running":
        return server.get("revision", 0) >= target
    if status == "Error":
        if server.get("latest_revision", 0) < target:
            return False
        return accepted_status != "Error" or seen_change or not server.get("operation_id")
    return False


def wait_for_deploy(client: ControlPlane, accepted: dict[str, Any], poller: Poller) -> dict:
    """Poll until the accepted deploy is Running (returned) or fails (`CliError`)."""
    name = accepted["name"]
    target = accepted.get("latest_revision") or accepted.get("revision") or 0
    accepted_status, last_status = accepted.get("status"), None
    seen_change = False
    started = poller.clock()
    deadline = started + poller.timeout
    with WaitDisplay(f"deploying {name} revision {target}") as display:
        while True:
            server = client.get_server(name)
            if server is None:
                raise CliError(f"server {name} disappeared while deploying (deleted?)")
            status = server.get("status")
            seen_change = seen_change or status != accepted_status
            if status != last_status:
                display.changed(status, server.get("status_reason") if status != "Running" else None)
                last_status = status
            if deploy_finished(server, target, accepted_status, seen_change):
                if status == "Error":
                    raise CliError(f"deploy of {name} failed: {server.get('status_reason') or 'no reason given'}")
                return server
            if poller.clock() >= deadline:
                raise CliError(f"timed out after {poller.timeout:g}s waiting for {name} "
                               f"(status {status}, revision {server.get('revision')}/{target})")
            display.tick(f"deploying {name} revision {target}: {status} ({poller.clock() - started:.0f} s)")
            poller.sleep(POLL_INTERVAL)


def wait_for_delete(client: ControlPlane, name: str, poller: Poller) -> None:
    """Poll until `GET /api/servers/{name}` answers 404; `CliError` on timeout.

    A failed delete is not terminal here: the workflow retries, and the status line
    printed on each change tells the user why it is stuck.
    """
    started = poller.clock()
    deadline = started + poller.timeout
    last_status = None
    with WaitDisplay(f"deleting {name}") as display:
        while True:
            server = client.get_server(name)
            if server is None:
                return
            status = server.get("status")
            if status != last_status:
                display.changed(status, server.get("status_reason"))
                last_status = status
            if poller.clock() >= deadline:
                raise CliError(f"timed out after {poller.timeout:g}s waiting for {name} to be deleted "
                               f"(status {status})")
            display.tick(f"deleting {name}: {status} ({poller.clock() - started:.0f} s)")
            poller.sleep(POLL_INTERVAL)


def wait_for_operation(client: ControlPlane, operation_id: str, poller: Poller, what: str) -> dict[str, Any]:
    """Poll `GET /api/operations/{id}` until the orchestration ends; returns its status document.

    Shows one line per step of its custom status `{"step", "number", "of"}` (the provision
    workflow's progress). Raises CliError on timeout.
    """
    started, shown = poller.clock(), None
    with WaitDisplay(what) as display:
        while True:
            operation = client.get_operation(operation_id)
            progress = operation.get("customStatus") or {}
            step = f"[{progress.get('number', '?')}/{progress.get('of', '?')}] {progress.get('step')}"
            if progress.get("step") != shown:  # one line per step, not per poll
                shown = progress.get("step")
                display.line(f"  {escape(step)}")
            if operation.get("runtimeStatus") in ("Completed", "Failed", "Terminated"):
                return operation
            if poller.clock() - started > poller.timeout:
                raise CliError(f"{what} still running after {poller.timeout:g} s (operation {operation_id})")
            display.tick(f"{what}: {step} ({poller.clock() - started:.0f} s)")
            poller.sleep(2.0)
