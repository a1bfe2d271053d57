"""Shared secrets of the platform's own entry points: devhost's host key and the gateway's
metrics scrape token (NFR-SEC-004, docs/entry-points.md).

Each comes from a setting (``MCPAAS_HOST_KEY``, ``MCPAAS_GATEWAY_METRICS_TOKEN``: what a
deployment with several replicas or machines uses, from Key Vault or a Kubernetes
Secret) or, when unset, from a file in the data dir that the first process to need it
creates: 32 random bytes, URL-safe base64, mode 0600, written to a temporary file and
linked into place so two processes starting at once agree on one value. Whoever can
read the data dir controls the local platform anyway (it holds the signing key too).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Literal, overload

from pydantic import SecretStr

from shared.settings import Settings


def read_key(path: Path) -> str | None:
    """The key stored at `path`, or None when the file is missing or empty."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def read_or_create_key(path: Path) -> str:
    """The key at `path`, created (mode 0600, parents 0700) when missing.

    Raises OSError when the directory is not writable.
    """
    existing = read_key(path)
    if existing:
        return existing
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(32))
        try:
            os.link(temporary, path)  # atomic and never overwrites: a racing writer's key wins
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    key = read_key(path)
    if key is None:
        raise OSError(f"key file {path} is empty")
    return key


def _resolve(setting: SecretStr | None, path: Path, create: bool) -> str | None:
    if setting is not None and setting.get_secret_value():
        return setting.get_secret_value()
    return read_or_create_key(path) if create else read_key(path)


# with `create` true (the default) the key exists afterwards, so the result is never None
@overload
def host_key(settings: Settings, *, create: Literal[True] = True) -> str: ...
@overload
def host_key(settings: Settings, *, create: bool) -> str | None: ...


def host_key(settings: Settings, *, create: bool = True) -> str | None:
    """devhost's host (master) key: ``MCPAAS_HOST_KEY`` or ``<data dir>/auth/host-key``.

    With `create` false (clients such as the CLI) a missing file gives None.
    """
    return _resolve(settings.host_key, settings.host_key_path, create)


@overload
def metrics_token(settings: Settings, *, create: Literal[True] = True) -> str: ...
@overload
def metrics_token(settings: Settings, *, create: bool) -> str | None: ...


def metrics_token(settings: Settings, *, create: bool = True) -> str | None:
    """The gateway's `/metrics` scrape token: ``MCPAAS_GATEWAY_METRICS_TOKEN`` or
    ``<data dir>/auth/metrics-token``; with `create` false a missing file gives None."""
    return _resolve(settings.gateway_metrics_token, settings.metrics_token_path, create)


def matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret with the expected one."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
