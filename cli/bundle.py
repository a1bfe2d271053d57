"""Pack a project directory into a code bundle and upload it (docs/bundles.md).

`pack` builds a deterministic `tar.gz`: entries sorted by path, mtimes 0, owner and group
0 with no names, modes 0644/0755 (only the executable bit survives), a gzip header with no
file name or time; so the same files always give the same bytes, the same digest, and no
new revision. Left out: the directories and files in `ALWAYS_IGNORED` (any depth), and
whatever `.mcpaasignore` in the project root lists (gitignore syntax, read by `pathspec`).
A symbolic link, socket or device in the project is an error naming it, not a silent skip:
bundles hold regular files and directories only.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

from cli.api import ControlPlane
from cli.errors import CliError
from shared.bundles import DIGEST, digest_of
from shared.models import ServerSpec

IGNORE_FILE = ".mcpaasignore"
# build output, caches, VCS and local platform data: never part of the code that runs
ALWAYS_IGNORED = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__",
                            ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".mcpaas", ".DS_Store"})
ALWAYS_IGNORED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Packed:
    """A packed project: the archive bytes, their digest and the paths it holds."""

    data: bytes
    digest: str
    paths: list[str]


class Ignore:
    """Which project paths `pack` (and `mcpaas dev`'s watcher) leave out."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        ignore_file = self.root / IGNORE_FILE
        lines = ignore_file.read_text(encoding="utf-8").splitlines() if ignore_file.is_file() else []
        self.spec = pathspec.GitIgnoreSpec.from_lines(lines)

    def ignored(self, relative: str, is_dir: bool) -> bool:
        """True when `relative` (a `/`-separated path under the root) is left out."""
        parts = relative.split("/")
        if any(part in ALWAYS_IGNORED for part in parts) or relative.endswith(ALWAYS_IGNORED_SUFFIXES):
            return True
        return self.spec.match_file(relative + "/" if is_dir else relative)

    def ignored_path(self, path: str | Path) -> bool:
        """`ignored` for an absolute path (outside the root: True)."""
        try:
            relative = Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return True
        return relative != "." and self.ignored(relative, Path(path).is_dir())


def _walk(root: Path, ignore: Ignore) -> list[tuple[str, Path, os.stat_result]]:
    found = []
    for current, dirnames, filenames in os.walk(root):
        base = Path(current)
        for name in sorted(dirnames + filenames):
            path = base / name
            relative = path.relative_to(root).as_posix()
            info = path.lstat()
            if ignore.ignored(relative, stat.S_ISDIR(info.st_mode)):
                if name in dirnames:
                    dirnames.remove(name)
                continue
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise CliError(f"{path} is not a regular file or directory (a link?): bundles hold files and "
                               f"directories only; replace it or list it in {IGNORE_FILE}")
            found.append((relative, path, info))
    return sorted(found, key=lambda item: item[0])


def pack(directory: Path) -> Packed:
    """The deterministic `tar.gz` of `directory` (see the module docstring). Raises CliError
    for a missing directory, a link or special file, or a project with nothing to pack."""
    root = directory.resolve()
    if not root.is_dir():
        raise CliError(f"bundle directory {directory} does not exist")
    entries = _walk(root, Ignore(root))
    if not any(stat.S_ISREG(info.st_mode) for _, _, info in entries):
        raise CliError(f"bundle directory {directory} has no files to pack (all ignored?)")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for relative, path, info in entries:
                member = tarfile.TarInfo(relative)
                member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "", ""
                if stat.S_ISDIR(info.st_mode):
                    member.type, member.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(member)
                    continue
                member.size = info.st_size
                member.mode = 0o755 if info.st_mode & 0o111 else 0o644
                with path.open("rb") as content:
                    tar.addfile(member, content)
    data = buffer.getvalue()
    return Packed(data, digest_of(data), [relative for relative, _, _ in entries])


def resolve_bundle(data: dict[str, Any], base: Path) -> Packed | None:
    """Pack the directory named by `data["package"]["bundle"]` (relative to `base`, the spec
    file's directory) and put its digest in its place; returns the Packed bundle, to upload
    before the spec is sent, or None when the spec names no bundle directory (a digest is
    left as it is)."""
    package = data.get("package")
    if not isinstance(package, dict):
        return None
    bundle = package.get("bundle")
    if not isinstance(bundle, str) or DIGEST.match(bundle):
        return None
    packed = pack(base / bundle)
    package["bundle"] = packed.digest
    return packed


def upload(client: ControlPlane, packed: Packed) -> dict[str, Any]:
    """Upload `packed` (`POST /api/bundles`); the answer. Raises CliError when the control
    plane names another digest (the bytes changed on the way)."""
    answer = client.upload_bundle(packed.data)
    if answer.get("bundle") != packed.digest:
        raise CliError(f"the control plane stored bundle {answer.get('bundle')} for {packed.digest}")
    return answer


def unchanged_server(client: ControlPlane, spec: ServerSpec) -> dict[str, Any] | None:
    """The server `spec.name` when it is Running exactly `spec` already (same bundle digest,
    same fields): deploying it again would only add a revision. None otherwise."""
    server = client.get_server(spec.name)
    if server is None or server.get("status") != "Running":
        return None
    try:
        return server if ServerSpec.model_validate(server.get("spec")) == spec else None
    except ValueError:  # a stored spec this CLI cannot read: deploy, and let the server decide
        return None
