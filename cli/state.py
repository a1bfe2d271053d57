"""Per-invocation state shared by the commands through typer's context object.

Tests pass a `CliState` as `obj=` to `CliRunner.invoke` to inject an
`httpx.MockTransport` and a fake clock, so no command needs monkeypatching.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cli.api import DEFAULT_API_URL, ControlPlane


@dataclass
class CliState:
    """Where the control plane is, and the seams tests replace."""

    api_url: str = DEFAULT_API_URL
    token: str | None = None  # bearer token or API key sent to the control plane
    transport: httpx.BaseTransport | None = None
    azure_transport: Any = None  # azure-core HttpTransport for the Entra sign-in (None: the real one)
    sleep: Callable[[float], None] = field(default=time.sleep)
    clock: Callable[[], float] = field(default=time.monotonic)

    def client(self) -> ControlPlane:
        """A control plane client for this invocation."""
        return ControlPlane(self.api_url, transport=self.transport, token=self.token)
