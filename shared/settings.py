"""The one settings object of MCPaaS (pydantic-settings, environment prefix ``MCPAAS_``).

Read once per process through :func:`get_settings`; nothing else reads ``os.environ``
for MCPaaS configuration. Every field has an embedded default so the platform runs on
one machine with no Azure account (DESIGN.md, "Storage" and "devhost").
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process configuration.

    Attributes:
        data_dir: directory holding the SQLite store, durable history, logs and
            per-server working directories (default ``.mcpaas`` under the cwd).
        api_host / api_port: where devhost serves the control plane (``/api``).
        gateway_host / gateway_port: where the gateway serves MCP traffic.
        gateway_url: base URL the control plane uses to reach the gateway
            (defaults to ``http://{gateway_host}:{gateway_port}``).
        api_url: base URL clients use to reach the control plane.
        max_body_bytes: largest accepted REST request body, in bytes (1 MiB); the
            triggers enforce it so the caller gets a 400 naming the body.
        host_max_body_bytes: largest body devhost buffers at all, in bytes; mirrors the
            Functions host's 100 MB HTTP request limit
            (https://learn.microsoft.com/azure/azure-functions/functions-scale#service-limits).
        task_hub: Durable Functions task hub name.
    """

    model_config = SettingsConfigDict(env_prefix="MCPAAS_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path.cwd() / ".mcpaas")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=7071, ge=1, le=65535)
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    gateway_url_override: str | None = Field(default=None, alias="MCPAAS_GATEWAY_URL")
    api_url_override: str | None = Field(default=None, alias="MCPAAS_API_URL")
    max_body_bytes: int = 1024 * 1024
    host_max_body_bytes: int = 100 * 1024 * 1024
    task_hub: str = "mcpaas"

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway, without a trailing slash."""
        url = self.gateway_url_override or f"http://{self.gateway_host}:{self.gateway_port}"
        return url.rstrip("/")

    @property
    def api_url(self) -> str:
        """Base URL of the control plane, without a trailing slash."""
        url = self.api_url_override or f"http://{self.api_host}:{self.api_port}"
        return url.rstrip("/")

    @property
    def store_path(self) -> Path:
        """SQLite file of the embedded document store."""
        return self.data_dir / "store.sqlite"

    @property
    def durable_path(self) -> Path:
        """SQLite file holding durable orchestration history (devhost)."""
        return self.data_dir / "durable.sqlite"

    @property
    def servers_dir(self) -> Path:
        """Per-server working directories and logs (gateway)."""
        return self.data_dir / "servers"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()
