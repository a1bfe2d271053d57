"""Unpack a server's code bundle into its own directory (issue 13 item 2, docs/bundles.md).

Runs during provisioning (`gateway.children.provision`), before the install step. The
gateway trusts neither the uploader nor the control plane's check: it reads the artifact
(`shared.blobs`), verifies that its bytes hash to the spec's digest, and checks the whole
archive again (`shared.bundles.check_archive`) before it writes anything.

The server's directory is also its children's HOME and cwd, writable by them, and a
running child of the previous revision may still be in it; so every write goes through
directory file descriptors opened with `O_NOFOLLOW` (a symlink a child planted, or a
directory it swapped for one, is replaced, never followed), each file is written under a
temporary name and renamed into place (a reader sees the old or the new file), and files
are owned by the server's sandbox uid (`Sandbox.uid_for`) so its install step can
rewrite them (`npm install` updates package-lock.json). What the previous bundle wrote and
this one does not have is removed; everything else (caches, `node_modules`, what the
server wrote) stays. The list of what a bundle wrote is kept where no child can edit it:
`<servers_dir>/.bundles/<name>.json` (`.bundles` is no valid server name).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from shared import bundles
from shared.blobs import ArtifactStore, open_artifacts
from shared.settings import get_settings

from gateway.children.sandbox import Sandbox

STATE_DIR = ".bundles"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1024 * 1024


class BundleUnpackError(RuntimeError):
    """The bundle could not be read, verified or written; `str()` says why."""


def _remove(name: str, dir_fd: int) -> None:
    """Remove entry `name` of `dir_fd` whatever it is (a directory tree is removed without
    following symlinks inside it)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.EISDIR or error.errno == errno.EPERM:  # Linux unlink(dir): EISDIR
            shutil.rmtree(name, dir_fd=dir_fd)
        elif error.errno != errno.ENOENT:
            raise


class _Tree:
    """Writes below one root directory through O_NOFOLLOW directory descriptors."""

    def __init__(self, root: Path, uid: int | None) -> None:
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.uid = uid

    def close(self) -> None:
        os.close(self.root_fd)

    @contextlib.contextmanager
    def parent(self, path: str, create: bool) -> Iterator[tuple[int, str] | None]:
        """(descriptor of `path`'s parent, its last segment); None when a parent is missing
        (or not a real directory) and `create` is False."""
        *dirs, leaf = path.split("/")
        fds = [self.root_fd]
        try:
            for segment in dirs:
                fd = self._open_dir(fds[-1], segment, create)
                if fd is None:
                    yield None
                    return
                fds.append(fd)
            yield fds[-1], leaf
        finally:
            for fd in fds[1:]:
                os.close(fd)

    def _open_dir(self, at: int, name: str, create: bool) -> int | None:
        for _ in range(3):  # a child may race us; it cannot win more than a retry or two
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=at)
            except FileNotFoundError:
                if not create:
                    return None
            except OSError as error:  # ELOOP: a symlink; ENOTDIR: a file
                if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                if not create:
                    return None
                _remove(name, at)
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=at)
                if self.uid is not None:
                    os.chown(name, self.uid, self.uid, dir_fd=at, follow_symlinks=False)
        raise BundleUnpackError(f"directory {name!r} keeps changing while unpacking")

    def make_dir(self, path: str) -> None:
        with self.parent(f"{path}/.", create=True):
            pass

    def write(self, path: str, reader, executable: bool) -> None:
        with self.parent(path, create=True) as found:
            assert found is not None
            dir_fd, leaf = found
            temporary = f".mcpaas-unpack-{uuid.uuid4().hex}"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(reader, out, _COPY_CHUNK)
                    os.fchmod(out.fileno(), 0o755 if executable else 0o644)
                    if self.uid is not None:
                        os.fchown(out.fileno(), self.uid, self.uid)
                try:
                    os.rename(temporary, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except OSError as error:  # a directory (or a child's tree) where the file goes
                    if error.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                        raise
                    _remove(leaf, dir_fd)
                    os.rename(temporary, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=dir_fd)
                raise

    def remove(self, path: str) -> None:
        """Remove file `path` if it is still below a real directory chain; never follows links."""
        with self.parent(path, create=False) as found:
            if found is not None:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                    os.unlink(found[1], dir_fd=found[0])

    def remove_empty_dir(self, path: str) -> None:
        with self.parent(path, create=False) as found:
            if found is not None:
                with contextlib.suppress(OSError):  # not empty, gone, or not a directory
                    os.rmdir(found[1], dir_fd=found[0])


class BundleUnpacker:
    """Puts bundles into servers' own directories.

    Args:
        sandbox: the servers' directories and uids (`Sandbox.prepare`, `Sandbox.uid_for`).
        artifacts: where bundles are stored (default: `open_artifacts` of the settings).
        limits: bundle limits (default: the settings').
    """

    def __init__(self, sandbox: Sandbox, artifacts: ArtifactStore | None = None,
                 limits: bundles.BundleLimits | None = None) -> None:
        self.sandbox = sandbox
        self._artifacts = artifacts
        self.limits = limits or bundles.BundleLimits.from_settings(get_settings())

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store, opened on first use."""
        if self._artifacts is None:
            self._artifacts = open_artifacts(get_settings())
        return self._artifacts

    def state_file(self, name: str) -> Path:
        """Where the list of paths the last bundle of `name` wrote is kept."""
        return self.sandbox.servers_dir / STATE_DIR / f"{name}.json"

    def fetch(self, digest: str) -> bytes:
        """The bundle's bytes, verified against `digest` and checked whole.
        Raises BundleUnpackError, or `shared.bundles.BundleError` for a refused archive."""
        try:
            data = self.artifacts.get(bundles.artifact_name(digest))
        except Exception as error:  # NotFoundError, a storage outage: name the kind
            raise BundleUnpackError(f"bundle {digest} could not be read from the artifact store "
                                    f"({type(error).__name__}: {error})") from None
        if bundles.digest_of(data) != digest:
            raise BundleUnpackError(f"bundle {digest}: stored bytes do not match the digest")
        bundles.check_archive(data, self.limits)
        return data

    def unpack(self, name: str, digest: str) -> str:
        """Replace server `name`'s previous bundle with bundle `digest`; returns a summary
        line. Blocking (file I/O): run it in a thread. Raises BundleUnpackError or
        `shared.bundles.BundleError`."""
        data = self.fetch(digest)
        own = self.sandbox.prepare(name)
        previous = self._previous(name)
        written: list[str] = []
        dirs: list[str] = []
        tree = _Tree(own, self.sandbox.uid_for(name))
        try:
            for entry, reader in bundles.entries(data, self.limits):
                if entry.is_dir:
                    tree.make_dir(entry.path)
                    dirs.append(entry.path)
                else:
                    tree.write(entry.path, reader, entry.executable)
                    written.append(entry.path)
            for path in sorted(set(previous.get("files", [])) - set(written), reverse=True):
                tree.remove(path)
            for path in sorted(set(previous.get("dirs", [])) - set(dirs), reverse=True):
                tree.remove_empty_dir(path)
        finally:
            tree.close()
        self._save(name, {"bundle": digest, "files": written, "dirs": dirs})
        return f"unpacked {digest}: {len(written)} files, {len(dirs)} directories"

    def current(self, name: str) -> str | None:
        """The digest of the bundle last unpacked for `name` on this disk, or None."""
        try:
            state = json.loads(self.state_file(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state.get("bundle") if isinstance(state, dict) else None

    def _previous(self, name: str) -> dict:
        try:
            state = json.loads(self.state_file(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        # only ever written by `_save`, outside every child's reach; re-checked all the same
        return {key: [p for p in state.get(key, []) if isinstance(p, str) and _relative(p)]
                for key in ("files", "dirs")} if isinstance(state, dict) else {}

    def _save(self, name: str, state: dict) -> None:
        path = self.state_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        temporary.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temporary, path)


def _relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "" not in parts and "." not in parts
