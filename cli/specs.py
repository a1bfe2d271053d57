"""Building a ServerSpec for `mcpaas deploy` from a file or from flags.

Validation is local and uses the same `shared.models.ServerSpec` the control plane
uses, so a bad spec fails fast with field errors before anything is sent.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from cli.errors import SpecError
from shared.errors import validation_errors
from shared.models import ServerSpec


def load_spec_file(path: str, stdin: TextIO | None = None) -> dict[str, Any]:
    """Read a YAML or JSON spec from `path` (`-` reads `stdin`).

    JSON is a subset of YAML, so one parser reads both. Raises `SpecError` when the file
    is missing, unparsable, or not a mapping.
    """
    try:
        if path == "-":
            text = (stdin or sys.stdin).read()
        else:
            text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {path} is not valid YAML or JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"spec file {path} must hold a mapping (the ServerSpec fields)")
    return data


def spec_base(path: str) -> Path:
    """The directory a spec file's relative paths (`package.bundle`) are read from: the
    file's own directory, or the current directory for stdin (`-`)."""
    return Path.cwd() if path == "-" else Path(path).resolve().parent


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    """Turn repeated `K=V` flags into a dict; the value may itself contain `=`."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def spec_from_flags(name: str | None, command: str | None, args: list[str],
                    env: list[str], remote_url: str | None) -> dict[str, Any]:
    """A spec dict from deploy flags: `--command` means kind package, `--remote-url` remote."""
    if command and remote_url:
        raise SpecError("give either --command (package) or --remote-url (remote), not both")
    if not command and not remote_url:
        raise SpecError("give a spec file (-f FILE) or --command or --remote-url")
    if not name:
        raise SpecError("--name is required when deploying from flags")
    if remote_url:
        if args or env:
            raise SpecError("--arg and --env apply to --command servers only")
        return {"name": name, "kind": "remote", "remote": {"url": remote_url}}
    package = {"command": command, "args": list(args), "env": parse_env_pairs(env)}
    return {"name": name, "kind": "package", "package": package}


def validate_spec(data: dict[str, Any]) -> ServerSpec:
    """Validate `data` as a ServerSpec; raise `SpecError` listing each failing field.

    A file without `kind` takes the kind of the one source section it has (`package:`,
    `container:` or `remote:`), as project files (`mcpaas.yaml`, docs/bundles.md) leave it out.
    """
    sections = [kind for kind in ("package", "container", "remote") if kind in data]
    if "kind" not in data and len(sections) == 1:
        data = {**data, "kind": sections[0]}
    try:
        return ServerSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError("invalid server spec", validation_errors(exc)) from exc


def spec_payload(spec: ServerSpec) -> dict[str, Any]:
    """The JSON body sent to the control plane: the validated spec, unset sections omitted.

    Secret values are written in clear here only, on their way to the control plane (JSON
    dumping masks a `SecretStr`); the control plane moves them into the secret store.
    """
    payload = spec.model_dump(mode="json", exclude_none=True)
    source = spec.package or spec.container
    if source is not None and not source.secrets:
        del payload[spec.kind.value]["secrets"]  # the default: bodies stay as they were before secrets
    for env_name, secret in (source.secrets if source is not None else {}).items():
        if secret.value is not None:
            payload[spec.kind.value]["secrets"][env_name]["value"] = secret.value.get_secret_value()
    return payload
