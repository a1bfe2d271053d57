"""Waiting for lifecycle operations to finish by polling the server resource.

The control plane answers 202 and runs the workflow asynchronously; these loops watch
`GET /api/servers/{name}` and report status changes until a terminal state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.markup import escape

from cli import render
from cli.api import ControlPlane
from cli.errors import CliError

POLL_INTERVAL = 0.5


@dataclass
class Poller:
    """Clock and sleep used by the loops (replaced by fakes in tests)."""

    sleep: Callable[[float], None]
    clock: Callable[[], float]
    timeout: float


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
    console = render.err()
    deadline = poller.clock() + poller.timeout
    while True:
        server = client.get_server(name)
        if server is None:
            raise CliError(f"server {name} disappeared while deploying (deleted?)")
        status = server.get("status")
        seen_change = seen_change or status != accepted_status
        if status != last_status:
            reason = server.get("status_reason")
            suffix = f" — {escape(reason)}" if reason and status != "Running" else ""
            console.print(f"  {render.status_text(status)}{suffix}")
            last_status = status
        if deploy_finished(server, target, accepted_status, seen_change):
            if status == "Error":
                raise CliError(f"deploy of {name} failed: {server.get('status_reason') or 'no reason given'}")
            return server
        if poller.clock() >= deadline:
            raise CliError(f"timed out after {poller.timeout:g}s waiting for {name} "
                           f"(status {status}, revision {server.get('revision')}/{target})")
        poller.sleep(POLL_INTERVAL)


def wait_for_delete(client: ControlPlane, name: str, poller: Poller) -> None:
    """Poll until `GET /api/servers/{name}` answers 404; `CliError` on timeout.

    A failed delete is not terminal here: the workflow retries, and the status line
    printed on each change tells the user why it is stuck.
    """
    console = render.err()
    deadline = poller.clock() + poller.timeout
    last_status = None
    while True:
        server = client.get_server(name)
        if server is None:
            return
        status = server.get("status")
        if status != last_status:
            reason = server.get("status_reason")
            console.print(f"  {render.status_text(status)}" + (f" — {escape(reason)}" if reason else ""))
            last_status = status
        if poller.clock() >= deadline:
            raise CliError(f"timed out after {poller.timeout:g}s waiting for {name} to be deleted "
                           f"(status {status})")
        poller.sleep(POLL_INTERVAL)
