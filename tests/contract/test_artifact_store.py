"""Contract suite every artifact-store adapter must pass (filesystem and Azure Blob)."""

from __future__ import annotations

import pytest

from shared.blobs import BlobArtifactStore, FilesystemArtifactStore, open_artifacts
from shared.errors import NotFoundError
from shared.settings import Settings

# `artifacts` (one fresh store per adapter: filesystem, blob on Azurite) comes from conftest.py


def test_put_get_roundtrip_keeps_every_byte(artifacts):
    data = bytes(range(256)) * 64
    stored = artifacts.put("bundles/echo/1.tar.gz", data, "application/gzip")
    assert stored.name == "bundles/echo/1.tar.gz" and stored.etag
    assert stored.url.endswith("bundles/echo/1.tar.gz")
    assert artifacts.get("bundles/echo/1.tar.gz") == data


def test_put_overwrites_and_changes_the_etag(artifacts):
    first = artifacts.put("manifest.yaml", b"v: 1\n", "application/yaml")
    second = artifacts.put("manifest.yaml", b"v: 2\n", "application/yaml")
    assert second.etag != first.etag
    assert artifacts.get("manifest.yaml") == b"v: 2\n"


def test_empty_content_is_an_artifact(artifacts):
    artifacts.put("empty", b"")
    assert artifacts.get("empty") == b"" and artifacts.list() == ["empty"]


def test_list_filters_by_prefix_and_sorts(artifacts):
    for name in ["snapshots/b.json", "snapshots/a.json", "bundles/x/1", "bundles/x/2", "top"]:
        artifacts.put(name, name.encode())
    assert artifacts.list() == ["bundles/x/1", "bundles/x/2", "snapshots/a.json", "snapshots/b.json", "top"]
    assert artifacts.list("snapshots/") == ["snapshots/a.json", "snapshots/b.json"]
    assert artifacts.list("bundles/x/2") == ["bundles/x/2"]
    assert artifacts.list("nothing/") == []


def test_missing_artifacts_are_not_found(artifacts):
    with pytest.raises(NotFoundError):
        artifacts.get("ghost")
    with pytest.raises(NotFoundError):
        artifacts.delete("ghost")
    with pytest.raises(NotFoundError):
        artifacts.get("ghost/inner")


def test_delete_removes_only_that_artifact(artifacts):
    artifacts.put("a/1", b"1")
    artifacts.put("a/2", b"2")
    artifacts.delete("a/1")
    with pytest.raises(NotFoundError):
        artifacts.get("a/1")
    assert artifacts.list() == ["a/2"]


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "../escape", "a/../b", "a/./b", ".hidden",
                                  "a\\b", "sp ace", "x" * 1025])
def test_invalid_names_are_rejected(artifacts, name):
    with pytest.raises(ValueError):
        artifacts.put(name, b"x")
    with pytest.raises(ValueError):
        artifacts.get(name)
    assert artifacts.list() == []


def test_settings_select_the_adapter(azurite_blob, tmp_path, monkeypatch):
    assert isinstance(open_artifacts(Settings(data_dir=tmp_path / "local")), FilesystemArtifactStore)
    assert (tmp_path / "local" / "artifacts").is_dir()
    monkeypatch.setenv("MCPAAS_BLOB_CONNECTION_STRING", azurite_blob.connection_string)
    monkeypatch.setenv("MCPAAS_BLOB_CONTAINER", "selected")
    settings = Settings(data_dir=tmp_path)
    assert azurite_blob.connection_string not in repr(settings)
    store = open_artifacts(settings)
    assert isinstance(store, BlobArtifactStore)
    store.put("hello.txt", b"hi", "text/plain")
    assert open_artifacts(settings).get("hello.txt") == b"hi"  # same container on reopen
    assert not (tmp_path / "artifacts").exists()
