"""The server catalog (UC7, FR-007, FR-010): curated entries a user installs by name.

An entry is a folder ``<catalog dir>/<name>/`` holding ``server.yaml`` (a ready ServerSpec,
deployable as is with `mcpaas deploy -f`) and ``catalog.yaml`` (`EntryMeta`: what the
catalog shows besides the spec; `shared.freshness` checks its ``last_updated``).
Directories: the repository's ``catalog/`` (curated, reviewed like code) and
``<data dir>/catalog/`` (entries `mcpaas catalog import` wrote; listed after the curated
ones, which win on a name clash).

Entries map both ways to the official MCP registry's ``server.json``
(https://github.com/modelcontextprotocol/registry, docs/reference/server-json; API
``/v0.1/servers``): `to_server_json` publishes an entry, `from_registry` reads a
``server.json`` or a v0.1 API answer (``{"server": ..., "_meta": ...}`` or a list
``{"servers": [...]}``). What server.json has no field for (license, tags, session mode,
review date, the exact spec) travels in ``_meta["io.mcpaas/catalog"]``.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadRequestError, NotFoundError, validation_errors
from shared.models import ServerKind, ServerSpec

CATALOG_DIR = Path(__file__).resolve().parents[1] / "catalog"
SERVER_JSON_SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
META_KEY = "io.mcpaas/catalog"
# server.json registryType -> the launcher that fetches and runs such a package
LAUNCHERS = {"npm": "npx", "pypi": "uvx"}
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


class Variable(BaseModel):
    """An environment variable an entry reads: a plain setting (`env`) or a secret (`secrets`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)
    description: str = ""
    required: bool = True
    default: str | None = None


class PackageRef(BaseModel):
    """Where the server's code comes from in a package registry (server.json `packages[]`)."""

    model_config = ConfigDict(extra="forbid")

    registry_type: Literal["npm", "pypi", "oci"]
    identifier: str = Field(min_length=1, max_length=256)


class EntryMeta(BaseModel):
    """``catalog.yaml``: the catalog's facts about an entry besides its spec.

    `registry_name` is the entry's reverse-DNS name in the MCP registry; `core` entries are
    held to the 30-day review rule (NFR-OPS-004, `shared.freshness`).
    """

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=100)
    core: bool = True
    last_updated: date
    registry_name: str = Field(default="", max_length=200)
    version: str = Field(default="", max_length=64)
    license: str = Field(default="", max_length=100)
    repository: str = Field(default="", max_length=500)
    package: PackageRef | None = None
    tags: list[str] = Field(default_factory=list, max_length=20)
    env: list[Variable] = Field(default_factory=list)
    secrets: list[Variable] = Field(default_factory=list)


class Entry(BaseModel):
    """One catalog entry as the API shows it: its metadata, its spec and derived facts."""

    name: str
    source: Literal["curated", "imported"]
    meta: EntryMeta
    spec: ServerSpec

    @property
    def transport(self) -> str:
        """``stdio`` for package servers, ``streamable-http`` for container and remote ones."""
        return "stdio" if self.spec.kind is ServerKind.PACKAGE else "streamable-http"

    @property
    def session_mode(self) -> str | None:
        """The gateway session mode the entry recommends (package servers only)."""
        if self.spec.package is None:
            return None
        return (self.spec.package.session_mode.value if self.spec.package.session_mode else "isolated")

    def summary(self) -> dict[str, Any]:
        """The list view: every catalog fact except the spec."""
        meta = self.meta.model_dump(mode="json", exclude={"package"})
        return {"name": self.name, **meta, "description": self.spec.description, "kind": self.spec.kind.value,
                "transport": self.transport, "session_mode": self.session_mode, "source": self.source}

    def detail(self) -> dict[str, Any]:
        """The full view: `summary`, the ready spec and the entry as a registry server.json."""
        spec = self.spec.model_dump(mode="json", exclude_none=True)
        return {**self.summary(), "spec": spec, "server_json": to_server_json(self)}

    def matches(self, query: str) -> bool:
        """True when every word of `query` occurs (case-insensitively) in the name, title,
        description or tags."""
        text = " ".join([self.name, self.meta.title, self.spec.description, *self.meta.tags]).lower()
        return all(word in text for word in query.lower().split())


class CatalogError(BadRequestError):
    """An entry or registry document that cannot be read or mapped (400 on the API)."""


def load_entry(folder: Path, source: Literal["curated", "imported"] = "curated") -> Entry:
    """Read ``folder/server.yaml`` and ``folder/catalog.yaml``. Raises CatalogError."""
    try:
        spec = ServerSpec.model_validate(yaml.safe_load((folder / "server.yaml").read_text(encoding="utf-8")))
        meta = EntryMeta.model_validate(yaml.safe_load((folder / "catalog.yaml").read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"catalog entry {folder.name} is unreadable: {exc}") from exc
    except ValidationError as exc:
        raise CatalogError(f"catalog entry {folder.name} is invalid", errors=validation_errors(exc)) from exc
    return Entry(name=spec.name, source=source, meta=meta, spec=spec)


def load_catalog(directories: list[tuple[Path, Literal["curated", "imported"]]]) -> list[Entry]:
    """Every entry of `directories` (folders with a ``server.yaml``), first directory winning
    on a name clash, sorted by name. Raises CatalogError for a malformed entry."""
    found: dict[str, Entry] = {}
    for directory, source in directories:
        for spec_file in sorted(Path(directory).glob("*/server.yaml")):
            entry = load_entry(spec_file.parent, source)
            found.setdefault(entry.name, entry)
    return sorted(found.values(), key=lambda entry: entry.name)


def catalog_dirs(data_dir: Path) -> list[tuple[Path, Literal["curated", "imported"]]]:
    """The directories the platform reads: the curated catalog, then imports under `data_dir`."""
    return [(CATALOG_DIR, "curated"), (Path(data_dir) / "catalog", "imported")]


def find(entries: list[Entry], name: str) -> Entry:
    """The entry called `name`. Raises NotFoundError (404)."""
    for entry in entries:
        if entry.name == name:
            return entry
    raise NotFoundError(f"catalog entry '{name}' not found")


def write_entry(directory: Path, meta: EntryMeta, spec: ServerSpec) -> Path:
    """Write an entry's two files under ``directory/<spec.name>/``; returns the folder."""
    folder = Path(directory) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "server.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True),
                                                       sort_keys=False), encoding="utf-8")
    (folder / "catalog.yaml").write_text(yaml.safe_dump(meta.model_dump(mode="json", exclude_none=True),
                                                        sort_keys=False), encoding="utf-8")
    return folder


def _variables(entry: Entry) -> list[dict[str, Any]]:
    return [{"name": var.name, "description": var.description, "isRequired": var.required,
             "isSecret": secret, **({"default": var.default} if var.default is not None else {})}
            for secret, group in ((False, entry.meta.env), (True, entry.meta.secrets)) for var in group]


def to_server_json(entry: Entry) -> dict[str, Any]:
    """`entry` as a registry ``server.json`` (schema `SERVER_JSON_SCHEMA`)."""
    meta = entry.meta
    document: dict[str, Any] = {"$schema": SERVER_JSON_SCHEMA,
                                "name": meta.registry_name or f"io.mcpaas.catalog/{entry.name}",
                                "title": meta.title, "description": entry.spec.description[:100],
                                "version": meta.version or "0.0.0"}
    if meta.repository:
        document["repository"] = {"url": meta.repository, "source": "github"}
    if meta.package is not None:
        package = {"registryType": meta.package.registry_type, "identifier": meta.package.identifier,
                   "version": meta.version, "transport": {"type": "stdio"}, "environmentVariables": _variables(entry)}
        if entry.spec.package is not None and entry.spec.package.command == LAUNCHERS.get(meta.package.registry_type):
            package["runtimeHint"] = entry.spec.package.command
        document["packages"] = [package]
    elif entry.spec.remote is not None:
        document["remotes"] = [{"type": "streamable-http", "url": entry.spec.remote.url}]
    document["_meta"] = {META_KEY: {"license": meta.license, "tags": meta.tags, "core": meta.core,
                                    "last_updated": meta.last_updated.isoformat(),
                                    "session_mode": entry.session_mode,
                                    "spec": entry.spec.model_dump(mode="json", exclude_none=True)}}
    return document


def registry_documents(body: Any) -> list[dict[str, Any]]:
    """The server.json documents in `body`: a server.json, a v0.1 server answer
    (``{"server": {...}}``) or a v0.1 list (``{"servers": [{"server": {...}}, ...]}``)."""
    if isinstance(body, dict) and isinstance(body.get("servers"), list):
        return [doc for item in body["servers"] for doc in registry_documents(item)]
    if isinstance(body, dict) and isinstance(body.get("server"), dict):
        return [body["server"]]
    if isinstance(body, dict) and isinstance(body.get("name"), str):
        return [body]
    raise CatalogError("not a registry server.json nor a /v0.1/servers answer",
                       errors=[{"field": "(body)", "message": "expected 'name', 'server' or 'servers'"}])


def local_name(registry_name: str) -> str:
    """A DNS-1123 server name from a registry name: ``io.github.acme/Weather MCP`` → ``weather-mcp``."""
    label = _DNS_LABEL.sub("-", registry_name.rsplit("/", 1)[-1].lower()).strip("-")[:63].strip("-")
    if not label:
        raise CatalogError(f"cannot derive a server name from '{registry_name}'; pass one")
    return label


def _arguments(arguments: list[dict[str, Any]]) -> list[str]:
    argv: list[str] = []
    for argument in arguments:
        value = argument.get("value", argument.get("default"))
        if argument.get("type") == "named":
            argv.append(str(argument["name"]) if value is None else f"{argument['name']}={value}")
        elif value is not None:
            argv.append(str(value))
        elif argument.get("isRequired"):
            raise CatalogError(f"positional argument '{argument.get('valueHint', '?')}' has no value; "
                               "edit the imported server.yaml")
    return argv


def _package_spec(package: dict[str, Any]) -> dict[str, Any]:
    registry_type, identifier = package.get("registryType"), str(package.get("identifier", ""))
    if registry_type not in LAUNCHERS:
        raise CatalogError(f"package registry type '{registry_type}' is not supported (npm and pypi are)")
    if (package.get("transport") or {}).get("type", "stdio") != "stdio":
        raise CatalogError("only stdio packages run on the gateway; use the entry's remotes instead")
    version = package.get("version")
    pinned = (f"{identifier}@{version}" if registry_type == "npm" else f"{identifier}=={version}") if version \
        else identifier
    command = package.get("runtimeHint") or LAUNCHERS[registry_type]
    args = ["-y"] if command == "npx" else []
    args += [*_arguments(package.get("runtimeArguments") or []), pinned,
             *_arguments(package.get("packageArguments") or [])]
    env = {var["name"]: str(var.get("value", var["default"])) for var in package.get("environmentVariables") or []
           if not var.get("isSecret") and ("value" in var or "default" in var)}
    return {"kind": "package", "package": {"command": command, "args": args, "env": env}}


def from_registry(document: dict[str, Any], name: str | None = None) -> tuple[EntryMeta, ServerSpec]:
    """Map a registry server.json to catalog metadata and a ready spec.

    The spec is the ``_meta["io.mcpaas/catalog"]["spec"]`` of a document this module
    published; else the first npm/pypi stdio package (run by its ``runtimeHint`` or
    ``npx -y``/``uvx``, pinned to its version), else the first streamable-http remote.
    Secret environment variables become required secret names, never values.
    Raises CatalogError when nothing maps or the spec is invalid.
    """
    ours = (document.get("_meta") or {}).get(META_KEY) or {}
    packages, remotes = document.get("packages") or [], document.get("remotes") or []
    if ours.get("spec"):
        data = dict(ours["spec"])
    elif packages:
        data = _package_spec(packages[0])
    elif any(remote.get("type") == "streamable-http" for remote in remotes):
        remote = next(remote for remote in remotes if remote.get("type") == "streamable-http")
        if any(header.get("isRequired") for header in remote.get("headers") or []):
            raise CatalogError("the remote needs request headers, which a remote spec cannot carry yet")
        data = {"kind": "remote", "remote": {"url": remote["url"]}}
    else:
        raise CatalogError("the server.json has no npm/pypi stdio package and no streamable-http remote")
    registry_name = str(document.get("name", ""))
    data["name"] = name or data.get("name") or local_name(registry_name)
    data.setdefault("description", str(document.get("description", "")))
    variables = (packages[0].get("environmentVariables") or []) if packages else []
    try:
        spec = ServerSpec.model_validate(data)
        meta = EntryMeta.model_validate({
            "title": document.get("title") or data["name"], "core": False,
            "last_updated": ours.get("last_updated") or date.today().isoformat(),
            "registry_name": registry_name, "version": str(document.get("version", "")),
            "license": ours.get("license", ""), "repository": (document.get("repository") or {}).get("url", ""),
            "package": ({"registry_type": packages[0]["registryType"], "identifier": packages[0]["identifier"]}
                        if packages and not ours.get("spec") else None),
            "tags": ours.get("tags", []),
            "env": [_variable(var) for var in variables if not var.get("isSecret")],
            "secrets": [_variable(var) for var in variables if var.get("isSecret")]})
    except (ValidationError, KeyError) as exc:
        errors = (validation_errors(exc) if isinstance(exc, ValidationError)
                  else [{"field": str(exc), "message": "missing"}])
        raise CatalogError(f"registry entry '{registry_name}' does not map to a valid entry", errors=errors) from exc
    return meta, spec


def _variable(var: dict[str, Any]) -> dict[str, Any]:
    return {"name": var["name"], "description": str(var.get("description", "")),
            "required": bool(var.get("isRequired", False)),
            "default": str(var["default"]) if var.get("default") is not None else None}
