"""Artifact storage port: named byte blobs (bundles, rendered manifests, snapshots).

`ArtifactStore` has two adapters that pass one contract suite
(`tests/contract/test_artifact_store.py`):

- `FilesystemArtifactStore`, the embedded default, under `settings.data_dir/artifacts`;
- `BlobArtifactStore` on Azure Blob Storage (`azure-storage-blob`), selected by
  `MCPAAS_BLOB_CONNECTION_STRING` (Azurite) or `MCPAAS_BLOB_ACCOUNT_URL` with
  `DefaultAzureCredential` (managed identity), in container `MCPAAS_BLOB_CONTAINER`.

Names are relative, `/`-separated paths of `[A-Za-z0-9._-]` segments (no empty, `.` or
`..` segments, none starting with `.`), so a name can never escape the filesystem root
and means the same blob on both adapters.
Docs: https://learn.microsoft.com/azure/storage/blobs/storage-quickstart-blobs-python
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from shared.errors import NotFoundError

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
_MAX_NAME = 1024  # Azure's blob name limit


def check_name(name: str) -> str:
    """Return `name` if it is a valid artifact name; ValueError otherwise."""
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
        raise ValueError(f"artifact name must be 1-{_MAX_NAME} characters")
    if not all(_SEGMENT.match(segment) for segment in name.split("/")):
        raise ValueError(f"invalid artifact name '{name}': use '/'-separated [A-Za-z0-9._-] "
                         "segments, none empty or starting with '.'")
    return name


@dataclass(frozen=True)
class StoredArtifact:
    """What `put` answers: the artifact's `name`, its new `etag` and a `url` locating it."""

    name: str
    etag: str
    url: str


class ArtifactStore(Protocol):
    """Port for artifact blobs; all methods are synchronous.

    Errors: `NotFoundError` for a missing artifact, `ValueError` for an invalid name.
    """

    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> StoredArtifact:
        """Store `data` under `name`, replacing any previous content."""

    def get(self, name: str) -> bytes:
        """The artifact's bytes. NotFoundError if absent."""

    def list(self, prefix: str = "") -> list[str]:
        """Names starting with `prefix`, sorted."""

    def delete(self, name: str) -> None:
        """Remove the artifact. NotFoundError if absent."""


class FilesystemArtifactStore:
    """`ArtifactStore` as files under `root` (embedded default).

    Writes go to a temporary file then `os.replace`, so a reader sees the old or the new
    bytes, never half. The content type is not kept: nothing serves local artifacts.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).split("/"))

    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> StoredArtifact:
        """Store `data` atomically; the etag is the SHA-256 of the content."""
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the temporary name starts with '.', which no artifact name may, so list() skips it
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredArtifact(name, hashlib.sha256(data).hexdigest(), path.resolve().as_uri())

    def get(self, name: str) -> bytes:
        """The file's bytes; NotFoundError if absent."""
        try:
            return self._path(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"artifact '{name}' not found") from None

    def list(self, prefix: str = "") -> list[str]:
        """Names under the root starting with `prefix`, sorted."""
        names = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for filename in filenames:
                if filename.startswith("."):
                    continue
                name = filename if relative == "." else f"{relative}/{filename}"
                if name.startswith(prefix):
                    names.append(name)
        return sorted(names)

    def delete(self, name: str) -> None:
        """Remove the file; NotFoundError if absent."""
        try:
            self._path(name).unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"artifact '{name}' not found") from None


class BlobArtifactStore:
    """`ArtifactStore` on one Azure Blob Storage container (created if missing).

    Args:
        container: blob container name.
        connection_string: account connection string (Azurite's development account).
        account_url: ``https://<account>.blob.core.windows.net``, used with `credential`
            or `DefaultAzureCredential` when no connection string is given.

    Raises ValueError when neither `connection_string` nor `account_url` is given.
    """

    def __init__(self, container: str, *, connection_string: str | None = None,
                 account_url: str | None = None, credential: Any = None) -> None:
        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string)
        elif account_url:
            if credential is None:
                from azure.identity import DefaultAzureCredential  # only needed on Azure

                credential = DefaultAzureCredential()
            service = BlobServiceClient(account_url, credential=credential)
        else:
            raise ValueError("BlobArtifactStore needs a connection string or an account URL")
        self._container = service.get_container_client(container)
        try:
            self._container.create_container()
        except ResourceExistsError:
            pass  # created by infra or an earlier process

    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> StoredArtifact:
        """Upload (overwrite) the blob with `content_type`; returns its etag and URL."""
        blob = self._container.get_blob_client(check_name(name))
        result = blob.upload_blob(data, overwrite=True,
                                  content_settings=ContentSettings(content_type=content_type))
        return StoredArtifact(name, result["etag"], blob.url)

    def get(self, name: str) -> bytes:
        """Download the blob; NotFoundError if absent."""
        try:
            return self._container.download_blob(check_name(name)).readall()
        except ResourceNotFoundError:
            raise NotFoundError(f"artifact '{name}' not found") from None

    def list(self, prefix: str = "") -> list[str]:
        """Blob names starting with `prefix`, sorted."""
        return sorted(self._container.list_blob_names(name_starts_with=prefix or None))

    def delete(self, name: str) -> None:
        """Delete the blob; NotFoundError if absent."""
        try:
            self._container.delete_blob(check_name(name))
        except ResourceNotFoundError:
            raise NotFoundError(f"artifact '{name}' not found") from None


def open_artifacts(settings) -> ArtifactStore:
    """The artifact store chosen by settings: blob when a connection string or account
    URL is set, else the filesystem under `settings.data_dir/artifacts`."""
    if settings.blob_connection_string or settings.blob_account_url:
        secret = settings.blob_connection_string
        return BlobArtifactStore(settings.blob_container,
                                 connection_string=secret.get_secret_value() if secret else None,
                                 account_url=settings.blob_account_url)
    return FilesystemArtifactStore(settings.data_dir / "artifacts")
