"""Code bundles: a developer's own server code as a content-addressed `tar.gz` (docs/bundles.md).

A bundle is a gzip-compressed tar of regular files and directories, addressed by the
SHA-256 of its bytes (`sha256:<64 hex>`) and kept in the artifact store
(`shared.blobs`) as `bundles/<hex>.tar.gz`. The control plane checks an upload with
`check_archive` before storing it (`triggers.bundles`); the gateway checks it again
(`gateway.children.bundles`) before it writes a single file, so neither trusts the other
nor the uploader.

`entries` refuses, with a `BundleError` (400) naming the entry:
- bytes that are not gzip, or a gzip stream that is not a tar archive;
- any member that is not a regular file or a directory: symbolic and hard links,
  character and block devices, FIFOs, sparse files;
- absolute names, names with a `..` segment, a backslash or a NUL, names longer than
  `MAX_NAME_CHARS`, the same path twice, a path below a file;
- more than `BundleLimits.max_files` members or more than `max_unpacked_bytes` of file
  content (a tar bomb); the decompressed stream itself is bounded too, so a header that
  claims a huge size (or a huge PAX header) cannot make the reader buffer it.

Tar format: https://www.gnu.org/software/tar/manual/html_node/Standard.html;
Python's reader: https://docs.python.org/3/library/tarfile.html.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from shared.errors import BadRequestError

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ARTIFACT_PREFIX = "bundles/"
MEDIA_TYPE = "application/gzip"
MAX_NAME_CHARS = 1024
GZIP_MAGIC = b"\x1f\x8b"
# tar framing per member (512-byte header, padding, a PAX header for long names): what the
# decompressed stream may hold beyond the files' own bytes
_FRAMING_PER_MEMBER = 4 * 1024


@dataclass(frozen=True)
class BundleLimits:
    """Bounds of one bundle: compressed bytes (`max_bytes`), members (`max_files`, files
    and directories) and file content once unpacked (`max_unpacked_bytes`)."""

    max_bytes: int
    max_files: int
    max_unpacked_bytes: int

    @classmethod
    def from_settings(cls, settings) -> BundleLimits:
        """The limits `MCPAAS_BUNDLE_MAX_*` configure (`shared.settings.Settings`)."""
        return cls(settings.bundle_max_bytes, settings.bundle_max_files, settings.bundle_max_unpacked_bytes)


@dataclass(frozen=True)
class Entry:
    """One checked member: `path` (relative, `/`-separated, no `.` or `..` segment),
    whether it is a directory, its size in bytes and whether it is executable."""

    path: str
    is_dir: bool
    size: int
    executable: bool


@dataclass(frozen=True)
class Summary:
    """What `check_archive` found: the digest, compressed size, member count and the
    unpacked size of the files, in bytes."""

    digest: str
    size: int
    files: int
    unpacked_bytes: int


class BundleError(BadRequestError):
    """The bytes are not an acceptable bundle (400); `errors` names the entry."""

    title = "Invalid Bundle"

    def __init__(self, detail: str, entry: str = "(body)") -> None:
        super().__init__(detail, errors=[{"field": entry, "message": detail}])


def digest_of(data: bytes) -> str:
    """`sha256:<hex>` of `data`: a bundle's address."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def artifact_name(digest: str) -> str:
    """The artifact-store name of bundle `digest` (`bundles/<hex>.tar.gz`); ValueError for
    anything that is not `sha256:<64 hex>`."""
    if not DIGEST.fullmatch(digest):
        raise ValueError(f"not a bundle digest: {digest!r} (expected sha256:<64 hex>)")
    return f"{ARTIFACT_PREFIX}{digest.removeprefix('sha256:')}.tar.gz"


class _Bounded(io.RawIOBase):
    """A read-only stream that raises BundleError once more than `limit` bytes were read."""

    def __init__(self, inner: io.BufferedIOBase, limit: int) -> None:
        self.inner, self.limit, self.read_bytes = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.inner.read(len(buffer))
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise BundleError(f"the archive unpacks to more than {self.limit} bytes")
        buffer[:len(data)] = data
        return len(data)


def _kind_refused(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return "symbolic links are not allowed"
    if member.islnk():
        return "hard links are not allowed"
    if member.ischr() or member.isblk():
        return "device files are not allowed"
    if member.isfifo():
        return "FIFOs are not allowed"
    if member.issparse():
        return "sparse files are not allowed"
    if not (member.isreg() or member.isdir()):
        return f"member type {member.type!r} is not allowed (only regular files and directories)"
    return None


def _clean_path(name: str) -> str:
    """`name` as a relative `/`-separated path ('' for the archive's root directory)."""
    if len(name) > MAX_NAME_CHARS:
        raise BundleError(f"name longer than {MAX_NAME_CHARS} characters", name[:80] + "...")
    if name.startswith("/"):
        raise BundleError("absolute paths are not allowed", name)
    if "\\" in name or "\x00" in name:
        raise BundleError("backslashes and NUL characters are not allowed in names", name)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BundleError("'..' path segments are not allowed", name)
    return "/".join(parts)


class _Tally:
    """Running counts and the paths seen, to refuse duplicates, bombs and file/dir clashes."""

    def __init__(self, limits: BundleLimits) -> None:
        self.limits, self.count, self.total = limits, 0, 0
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def add(self, path: str, member: tarfile.TarInfo) -> None:
        self.count += 1
        if self.count > self.limits.max_files:
            raise BundleError(f"more than {self.limits.max_files} entries")
        if path in self.files or (path in self.dirs and not member.isdir()):
            raise BundleError("the same path appears twice", path)
        parents = path.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            if "/".join(parents[:depth]) in self.files:
                raise BundleError("a path lies below a file", path)
        if member.isdir():
            self.dirs.add(path)
            return
        self.files.add(path)
        self.total += member.size
        if self.total > self.limits.max_unpacked_bytes:
            raise BundleError(f"files add up to more than {self.limits.max_unpacked_bytes} bytes unpacked")


def entries(data: bytes, limits: BundleLimits) -> Iterator[tuple[Entry, IO[bytes] | None]]:
    """Check `data` member by member, yielding each `Entry` with a reader of its content
    (None for a directory; read it before asking for the next entry). Raises BundleError
    (see the module docstring) at the first refused member, so a caller that must not act
    on a bad archive consumes `check_archive` first."""
    if len(data) > limits.max_bytes:
        raise BundleError(f"the archive is {len(data)} bytes; the limit is {limits.max_bytes}")
    if not data.startswith(GZIP_MAGIC):
        raise BundleError("not a gzip-compressed archive (expected a .tar.gz)")
    bound = limits.max_unpacked_bytes + (limits.max_files + 2) * _FRAMING_PER_MEMBER
    stream = io.BufferedReader(_Bounded(gzip.GzipFile(fileobj=io.BytesIO(data)), bound))
    tally = _Tally(limits)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                path = _clean_path(member.name)
                refused = _kind_refused(member)
                if refused:
                    raise BundleError(refused, path or member.name)
                if not path:  # the archive's root directory ("." or "./")
                    if not member.isdir():
                        raise BundleError("a file without a name", member.name)
                    continue
                tally.add(path, member)
                yield (Entry(path, member.isdir(), member.size, bool(member.mode & 0o111)),
                       None if member.isdir() else tar.extractfile(member))
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        raise BundleError(f"not a valid tar.gz archive: {error}") from None
    if tally.count == 0:
        raise BundleError("the archive is empty")


def check_archive(data: bytes, limits: BundleLimits) -> Summary:
    """Check every member of `data` (reading all content, so a truncated stream fails);
    returns its Summary. Raises BundleError."""
    count = total = 0
    for entry, reader in entries(data, limits):
        count += 1
        total += entry.size
        if reader is not None:
            while reader.read(1024 * 1024):
                pass
    return Summary(digest_of(data), len(data), count, total)
