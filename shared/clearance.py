"""Security clearance (FR-020): what a spec may run, pull or call, by allowlist.

A spec passes when
- `package` (`command` + `args`, and `install`, each read by `shared.commandline`): every
  launcher it starts (wrapped ones too: `uv run X`) matches `clearance_launchers` and none
  matches `clearance_refused_launchers` (shells, `env`, `busybox`: refused even when an
  allowlist glob would admit them); it runs no inline code (`python -c`, `node -e`,
  `sh -c`, a program from stdin, ...) unless `clearance_allow_inline_code`; every package a
  fetching launcher downloads matches `clearance_packages`, and every other source (URL,
  git, path, tarball, index, registry) matches `clearance_package_sources` (empty: none);
  and `package.env` / `package.secrets` set no variable matching `clearance_refused_env`
  (PATH would pick another launcher, NODE_OPTIONS/LD_PRELOAD inject code);
- `package.bundle` (docs/bundles.md): the digest names a bundle the platform stored, which
  means `POST /api/bundles` checked it; the launcher rules above still apply to what runs
  it (`python server.py`: `python` must be admitted; no inline code). The bundle's own code
  is the owner's, as a package's is its publisher's: clearance cannot read it, the sandbox
  confines it. So its declared dependencies are the owner's too: with a bundle, an install
  step may name files inside it as sources (`-r requirements.txt`, `-e .`, `./pkg`, no
  absolute path, URL or `..`), and `npm install` reads its package.json as it always does;
- `container`: the image's registry matches a registry pattern (`docker.io` when the image
  names none);
- `remote`: the URL's host matches a remote-host pattern, and every address it resolves to
  passes the address policy (`shared.egress`: no loopback, private, link-local,
  unique-local, ... unless `remote_allowed_networks` opts a range in; never the platform's
  own endpoints).

Patterns are shell globs (`fnmatch`, case-sensitive). A launcher pattern without `/`
matches a bare command name (resolved through PATH at start); a pattern with `/` matches an
absolute or relative path, so `/tmp/x/python` is not admitted by `python`. The defaults
admit bare names only: a spec may run on any gateway host, whose venv lives elsewhere, and
a path glob wide enough to be portable (`*/.venv/bin/*`) also matches directories a
server can create. docs/clearance.md lists the defaults and how to widen them.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from shared.commandline import analyse, launcher_name
from shared.blobs import open_artifacts
from shared.bundles import artifact_name
from shared.egress import EgressPolicy, EgressRefused, url_endpoint
from shared.errors import UnprocessableError
from shared.models import PackageSource, ServerSpec
from shared.settings import Settings


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


def launcher_refused(command: str, settings: Settings) -> bool:
    """True when `command`'s program name (a path's basename too) is on the refused list."""
    return _matches(launcher_name(command), settings.clearance_refused_launchers)


def image_registry(image: str) -> str:
    """The registry host of an image reference (`docker.io` when it names none)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


# install options whose value may name a file inside a bundle (requirements, editable project)
_BUNDLE_SOURCE_OPTIONS = frozenset({"-r", "--requirement", "-e", "--editable", "--with-requirements",
                                    "--with-editable"})


def inside_bundle(source: str) -> bool:
    """True when an install `source` (as `shared.commandline` reports it: ``-r file`` or a
    positional) names a relative path inside the server's bundle: no absolute path, home,
    URL or scheme, backslash or `..`; a positional must be `.` or start with `./`."""
    option, _, value = source.rpartition(" ")
    if option and option not in _BUNDLE_SOURCE_OPTIONS:
        return False
    if not value or value.startswith(("/", "~")) or ":" in value or "\\" in value:
        return False
    if ".." in value.split("/"):
        return False
    return bool(option) or value == "." or value.startswith("./")


def _argv_problems(field: str, argv: list[str], settings: Settings,
                   bundle: bool = False) -> list[dict[str, str]]:
    found, messages = analyse(argv), []
    if bundle:  # the bundle's own dependency files are the owner's code (module docstring)
        found.sources = [source for source in found.sources if not inside_bundle(source)]
    for launcher in dict.fromkeys(found.launchers):
        if launcher_refused(launcher, settings):
            messages.append(f"launcher '{launcher}' is refused (a shell or command wrapper runs any command)")
        elif not launcher_allowed(launcher, settings.clearance_launchers):
            messages.append(f"launcher '{launcher}' is not on the clearance allowlist")
    if not settings.clearance_allow_inline_code:
        messages += [f"inline code is refused: '{form}'" for form in found.inline]
    messages += [f"package '{name}' is not on the clearance allowlist"
                 for name in dict.fromkeys(found.packages) if not _matches(name, settings.clearance_packages)]
    messages += [f"package source '{source}' is refused (only named registry packages; see clearance_package_sources)"
                 for source in dict.fromkeys(found.sources)
                 if not _matches(source.split(" ")[-1], settings.clearance_package_sources)]
    return [{"field": field, "message": message} for message in messages]


def _env_problems(package: PackageSource, settings: Settings) -> list[dict[str, str]]:
    problems = []
    for field, names in (("package.env", package.env), ("package.secrets", package.secrets)):
        problems += [{"field": f"{field}.{name}", "message": f"variable '{name}' may not be set by a spec "
                      "(it changes which program runs or injects code)"}
                     for name in names if _matches(name, settings.clearance_refused_env)]
    return problems


def _package_problems(spec: ServerSpec, settings: Settings) -> list[dict[str, str]]:
    package = spec.package
    assert package is not None
    bundle = package.bundle is not None
    problems = _argv_problems("package.command", [package.command, *package.args], settings, bundle)
    if package.install:
        problems += _argv_problems("package.install", package.install, settings, bundle)
    return problems + _env_problems(package, settings) + _bundle_problems(package, settings)


def _bundle_problems(package: PackageSource, settings: Settings) -> list[dict[str, str]]:
    """The bundle must be one `POST /api/bundles` checked and stored (a rollback's too)."""
    if package.bundle is None:
        return []
    name = artifact_name(package.bundle)
    if name in open_artifacts(settings).list(name):
        return []
    return [{"field": "package.bundle", "message": f"bundle {package.bundle} has not been uploaded "
             "(POST /api/bundles; `mcpaas deploy -f` uploads the spec's bundle directory)"}]


def _remote_problems(url: str, settings: Settings) -> list[dict[str, str]]:
    try:
        host, _ = url_endpoint(url)
    except EgressRefused as error:
        return [{"field": "remote.url", "message": str(error)}]
    host = host.lower()
    if not _matches(host, settings.clearance_remote_hosts):
        return [{"field": "remote.url", "message": f"host '{host}' is not on the clearance allowlist"}]
    # after the host patterns, so a name no pattern admits is never looked up in DNS
    refused = EgressPolicy.from_settings(settings).check_url(url)
    return [{"field": "remote.url", "message": f"address refused: {refused}"}] if refused else []


def problems(spec: ServerSpec, settings: Settings) -> list[dict[str, str]]:
    """Every clearance failure of `spec` as `{"field", "message"}` (empty: cleared).

    Resolves a remote URL's host name (blocking DNS) when a host pattern admits it.
    """
    if spec.package is not None:
        return _package_problems(spec, settings)
    if spec.container is not None:
        registry = image_registry(spec.container.image)
        if not _matches(registry, settings.clearance_registries):
            return [{"field": "container.image", "message": f"registry '{registry}' is not on the clearance allowlist"}]
    if spec.remote is not None:
        return _remote_problems(spec.remote.url, settings)
    return []


def ensure_cleared(spec: ServerSpec, settings: Settings) -> None:
    """Raise ClearanceError (422, listing each failing field) unless `spec` passes clearance."""
    found = problems(spec, settings)
    if found:
        raise ClearanceError(f"server '{spec.name}' failed security clearance: "
                             + "; ".join(problem["message"] for problem in found), errors=found)
