"""Security clearance (FR-020): what a spec may run, pull or call, by allowlist.

A spec passes when
- `package`: its launcher (`command`, and `install[0]`) matches a launcher pattern, and the
  package a fetching launcher (`npx`, `uvx`, `bunx`, `pnpm dlx`, `pip install`, `npm install`)
  would download matches a package pattern;
- `container`: the image's registry matches a registry pattern (`docker.io` when the image
  names none);
- `remote`: the URL's host matches a remote-host pattern.

Patterns are shell globs (`fnmatch`, case-sensitive). A launcher pattern without `/`
matches a bare command name (resolved through PATH at start); a pattern with `/` matches an
absolute or relative path, so `/tmp/x/python` is not admitted by `python`.

Defaults (`shared.settings`, `MCPAAS_CLEARANCE_*`, comma-separated) admit the usual
launchers (python, uv/uvx, node/npx, sh, `mcp-server-*`, anything under a `.venv/bin` or
`node_modules/.bin`, `/usr/bin`, `/usr/local/bin`), MCP-looking packages (`*mcp*`,
`@modelcontextprotocol/*`, `@azure/*`, `@microsoft/*`), the registries mcr.microsoft.com,
`*.azurecr.io`, ghcr.io, docker.io and local ones, and remote hosts on loopback and
Azure's app domains. Tighten them per deployment; an empty list admits nothing.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from shared.errors import UnprocessableError
from shared.models import ServerSpec
from shared.settings import Settings

# launchers that download the package named by their first positional argument
_FETCHERS = {("npx",), ("uvx",), ("bunx",), ("pnpm", "dlx"), ("pip", "install"), ("npm", "install"),
             ("uv", "tool", "run"), ("uv", "pip", "install")}


class ClearanceError(UnprocessableError):
    """The spec runs, pulls or calls something outside the clearance allowlists (422)."""

    title = "Security Clearance Refused"


def _matches(value: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def launcher_allowed(command: str, patterns: list[str]) -> bool:
    """True when `command` matches a launcher pattern (path patterns for paths, names otherwise)."""
    if "/" in command:
        return _matches(command, [p for p in patterns if "/" in p])
    return _matches(command, [p for p in patterns if "/" not in p])


def package_name(argv: list[str]) -> str | None:
    """The package a fetching launcher would download (version stripped), else None."""
    if not argv:
        return None
    name = argv[0].rsplit("/", 1)[-1]
    for fetcher in _FETCHERS:
        if (name, *argv[1:len(fetcher)]) == fetcher:
            positional = [arg for arg in argv[len(fetcher):] if not arg.startswith("-")]
            return _strip_version(positional[0]) if positional else None
    return None


def _strip_version(package: str) -> str:
    for marker in ("==", ">=", "<=", "~="):
        package = package.split(marker, 1)[0]
    scoped = package.startswith("@")
    base, _, _ = package[1:].partition("@") if scoped else package.partition("@")
    return f"@{base}" if scoped else base


def image_registry(image: str) -> str:
    """The registry host of an image reference (`docker.io` when it names none)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _package_problems(spec: ServerSpec, settings: Settings) -> list[dict[str, str]]:
    package, problems = spec.package, []
    for field, argv in (("package.command", [package.command, *package.args]),
                        ("package.install", package.install or [])):
        if not argv:
            continue
        if not launcher_allowed(argv[0], settings.clearance_launchers):
            problems.append({"field": field, "message": f"launcher '{argv[0]}' is not on the clearance allowlist"})
        fetched = package_name(argv)
        if fetched is not None and not _matches(fetched, settings.clearance_packages):
            problems.append({"field": field, "message": f"package '{fetched}' is not on the clearance allowlist"})
    return problems


def problems(spec: ServerSpec, settings: Settings) -> list[dict[str, str]]:
    """Every clearance failure of `spec` as `{"field", "message"}` (empty: cleared)."""
    if spec.package is not None:
        return _package_problems(spec, settings)
    if spec.container is not None:
        registry = image_registry(spec.container.image)
        if not _matches(registry, settings.clearance_registries):
            return [{"field": "container.image", "message": f"registry '{registry}' is not on the clearance allowlist"}]
    if spec.remote is not None:
        host = urlsplit(spec.remote.url).hostname or ""
        if not _matches(host, settings.clearance_remote_hosts):
            return [{"field": "remote.url", "message": f"host '{host}' is not on the clearance allowlist"}]
    return []


def ensure_cleared(spec: ServerSpec, settings: Settings) -> None:
    """Raise ClearanceError (422, listing each failing field) unless `spec` passes clearance."""
    found = problems(spec, settings)
    if found:
        raise ClearanceError(f"server '{spec.name}' failed security clearance: "
                             + "; ".join(problem["message"] for problem in found), errors=found)
