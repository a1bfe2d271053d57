"""The gateway's bundle unpacker (`gateway.children.bundles`): it re-checks what the control
plane checked, verifies the digest, and writes only inside the server's directory even when
a child of the previous revision planted links there."""

from __future__ import annotations

import os

import pytest

from gateway.children.bundles import BundleUnpacker, BundleUnpackError
from gateway.children.sandbox import Sandbox
from shared.blobs import FilesystemArtifactStore
from shared.bundles import BundleError, artifact_name, digest_of
from shared.settings import Settings
from tests.unit.test_bundles import LIMITS, REFUSED, archive, member


def unpacker_for(tmp_path, mode: str = "none") -> tuple[BundleUnpacker, FilesystemArtifactStore]:
    store = FilesystemArtifactStore(tmp_path / "artifacts")
    sandbox = Sandbox(Settings(data_dir=tmp_path / "data", gateway_sandbox=mode))
    return BundleUnpacker(sandbox, store, LIMITS), store


def stored(store: FilesystemArtifactStore, data: bytes) -> str:
    store.put(artifact_name(digest_of(data)), data)
    return digest_of(data)


def tree(root) -> dict[str, str]:
    return {str(path.relative_to(root)): ("link" if path.is_symlink() else path.read_text())
            for path in sorted(root.rglob("*")) if path.is_symlink() or path.is_file()}


V1 = archive(member("server.py", b"v1"), member("old.py", b"gone in v2"), member("lib/util.py", b"u1"))
V2 = archive(member("server.py", b"v2"), member("lib/util.py", b"u2"),
             member("run.sh", b"#!/bin/sh\n", mode=0o755))


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_gateway_refuses_every_bad_archive_and_writes_nothing(tmp_path, case):
    unpacker, store = unpacker_for(tmp_path)
    unpacker.unpack("s", stored(store, V1))
    before = tree(unpacker.sandbox.own_dir("s"))
    data, words = REFUSED[case]
    with pytest.raises(BundleError, match=words.replace("(", r"\(")):
        unpacker.unpack("s", stored(store, data()))
    assert tree(unpacker.sandbox.own_dir("s")) == before
    assert not (tmp_path / "escape.py").exists() and not (tmp_path / "data" / "escape.py").exists()


def test_bytes_that_do_not_match_the_digest_or_a_missing_bundle_are_refused(tmp_path):
    unpacker, store = unpacker_for(tmp_path)
    store.put(artifact_name(digest_of(V1)), V2)  # swapped in the store behind the digest's back
    with pytest.raises(BundleUnpackError, match="do not match the digest"):
        unpacker.unpack("s", digest_of(V1))
    with pytest.raises(BundleUnpackError, match="could not be read"):
        unpacker.unpack("s", "sha256:" + "1" * 64)
    assert not unpacker.sandbox.own_dir("s").exists() or tree(unpacker.sandbox.own_dir("s")) == {}


def test_a_new_bundle_replaces_the_old_files_and_keeps_what_the_server_wrote(tmp_path):
    unpacker, store = unpacker_for(tmp_path)
    unpacker.unpack("s", stored(store, V1))
    own = unpacker.sandbox.own_dir("s")
    assert tree(own) == {"server.py": "v1", "old.py": "gone in v2", "lib/util.py": "u1"}
    (own / ".cache").mkdir()
    (own / ".cache" / "pip.db").write_text("cache")
    (own / "node_modules").mkdir()
    (own / "node_modules" / "dep.js").write_text("dep")
    assert unpacker.current("s") == digest_of(V1)
    summary = unpacker.unpack("s", stored(store, V2))
    assert summary.startswith(f"unpacked {digest_of(V2)}: 3 files") and unpacker.current("s") == digest_of(V2)
    assert tree(own) == {"server.py": "v2", "lib/util.py": "u2", "run.sh": "#!/bin/sh\n",
                         ".cache/pip.db": "cache", "node_modules/dep.js": "dep"}
    assert os.stat(own / "run.sh").st_mode & 0o777 == 0o755 and os.stat(own / "server.py").st_mode & 0o777 == 0o644


def test_links_a_child_planted_are_replaced_never_followed(tmp_path):
    unpacker, store = unpacker_for(tmp_path)
    unpacker.unpack("s", stored(store, V1))
    own = unpacker.sandbox.own_dir("s")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "util.py").write_text("precious")
    (outside / "server.py").write_text("precious")
    # the previous revision's child swaps a directory and a file for links out of its directory
    (own / "lib" / "util.py").unlink()
    (own / "lib").rmdir()
    (own / "lib").symlink_to(outside)
    (own / "server.py").unlink()
    (own / "server.py").symlink_to(outside / "server.py")
    unpacker.unpack("s", stored(store, V2))
    assert tree(outside) == {"util.py": "precious", "server.py": "precious"}
    assert not (own / "lib").is_symlink() and (own / "lib" / "util.py").read_text() == "u2"
    assert not (own / "server.py").is_symlink() and (own / "server.py").read_text() == "v2"


def test_the_record_of_written_files_lies_outside_the_servers_reach(tmp_path):
    unpacker, store = unpacker_for(tmp_path)
    unpacker.unpack("s", stored(store, V1))
    state = unpacker.state_file("s")
    assert not state.is_relative_to(unpacker.sandbox.own_dir("s"))
    victim = tmp_path / "data" / "victim.txt"
    victim.write_text("keep")
    # even a tampered record cannot point the removal outside the directory
    state.write_text('{"files": ["../victim.txt", "/etc/hostname", "server.py"], "dirs": [".."]}')
    unpacker.unpack("s", stored(store, V2))
    assert victim.read_text() == "keep" and (unpacker.sandbox.own_dir("s") / "server.py").read_text() == "v2"


def test_the_files_belong_to_the_servers_sandbox_uid(tmp_path):
    # a root gateway runs each server as a uid of its own; a non-root one keeps its own uid
    unpacker, store = unpacker_for(tmp_path, mode="bwrap")
    unpacker.unpack("s", stored(store, V2))
    uid = unpacker.sandbox.uid_for("s")
    assert (uid is not None) is (os.geteuid() == 0)
    own = unpacker.sandbox.own_dir("s")
    assert {os.stat(path).st_uid for path in [own, *own.rglob("*")]} == {uid if uid is not None else os.geteuid()}
