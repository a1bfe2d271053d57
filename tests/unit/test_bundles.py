"""Code bundles (docs/bundles.md): the archive checks both sides run (`shared.bundles`), the
CLI's deterministic packing and ignore rules (`cli.bundle`), and the clearance rule for
bundle specs (`shared.clearance`)."""

from __future__ import annotations

import gzip
import io
import random
import tarfile

import pytest

from cli.bundle import Ignore, pack, resolve_bundle
from cli.errors import CliError
from shared import clearance
from shared.blobs import FilesystemArtifactStore
from shared.bundles import BundleError, BundleLimits, artifact_name, check_archive, digest_of
from shared.models import ServerSpec
from shared.settings import Settings

LIMITS = BundleLimits(max_bytes=1024 * 1024, max_files=50, max_unpacked_bytes=64 * 1024)


def member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, **fields) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def archive(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """A tar.gz of exactly `members`, as an attacker would craft it (no sanitizing)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return gzip.compress(raw.getvalue())


# every refused archive, with the words its error names; the gateway's unpacker runs the same
# cases (tests/unit/gateway/test_bundle_unpack.py)
REFUSED = {
    "tar slip": (lambda: archive(member("ok.py"), member("../escape.py")), "'..'"),
    "nested tar slip": (lambda: archive(member("a/../../escape.py")), "'..'"),
    "absolute path": (lambda: archive(member("/etc/cron.d/x")), "absolute"),
    "symlink": (lambda: archive(member("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")), "symbolic link"),
    "hardlink": (lambda: archive(member("a.py"), member("b", kind=tarfile.LNKTYPE, linkname="a.py")), "hard link"),
    "device": (lambda: archive(member("dev", kind=tarfile.CHRTYPE, devmajor=1, devminor=3)), "device"),
    "fifo": (lambda: archive(member("pipe", kind=tarfile.FIFOTYPE)), "FIFO"),
    "too many files": (lambda: archive(*(member(f"f{i}") for i in range(51))), "more than 50 entries"),
    "too large unpacked": (lambda: archive(member("big", b"\0" * (64 * 1024 + 1))), "unpacked"),
    "not gzip": (lambda: b"PK\x03\x04 a zip file", "not a gzip"),
    "gzip of no tar": (lambda: gzip.compress(b"just text, no tar header" * 40), "not a valid tar"),
    "duplicate path": (lambda: archive(member("a.py"), member("a.py")), "twice"),
    "file below a file": (lambda: archive(member("a"), member("a/b")), "below a file"),
    "truncated": (lambda: archive(member("a.py", random.Random(1).randbytes(5000)))[:-200], "not a valid tar"),
    "empty": (lambda: archive(), "empty"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_upload_check_refuses_every_bad_archive(case):
    data, words = REFUSED[case]
    with pytest.raises(BundleError) as refused:
        check_archive(data(), LIMITS)
    assert words in refused.value.detail and refused.value.status == 400
    assert refused.value.extensions["errors"][0]["message"] == refused.value.detail


def test_a_huge_size_in_a_header_is_refused_before_the_reader_buffers_it():
    # one header claiming 1 TiB of content: the decompressed stream is bounded, not the claim trusted
    info, _ = member("huge")
    info.size = 1 << 40
    raw = info.tobuf(tarfile.PAX_FORMAT) + b"\0" * 4096
    with pytest.raises(BundleError, match="unpacked"):
        check_archive(gzip.compress(raw), LIMITS)


def test_a_gzip_bomb_stops_at_the_unpacked_limit():
    bomb = archive(*(member(f"z{i}", b"\0" * 20_000) for i in range(10)))
    assert len(bomb) < 2000  # compresses 200 kB to almost nothing
    with pytest.raises(BundleError, match="unpacked"):
        check_archive(bomb, LIMITS)


def test_an_oversize_upload_is_refused_before_decompressing():
    with pytest.raises(BundleError, match="limit is 1024"):
        check_archive(archive(member("a.py")) + b"\0" * 1024, BundleLimits(1024, 10, 4096))


def test_a_good_archive_passes_with_its_digest_and_counts():
    data = archive(member("./", kind=tarfile.DIRTYPE), member("./pkg", kind=tarfile.DIRTYPE),
                   member("./pkg/server.py", b"print('hi')\n"), member("README.md", b"# hi\n"))
    summary = check_archive(data, LIMITS)
    assert (summary.digest, summary.files, summary.unpacked_bytes) == (digest_of(data), 3, 17)
    assert artifact_name(summary.digest) == f"bundles/{summary.digest[7:]}.tar.gz"
    with pytest.raises(ValueError):
        artifact_name("sha256:../../etc")


def write_project(root, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def test_packing_is_deterministic_and_leaves_out_caches_vcs_and_ignored_paths(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    files = {"server.py": "x = 1\n", "lib/util.py": "y = 2\n", ".mcpaasignore": "secrets.txt\nbuild/\n",
             "secrets.txt": "token", "build/out.bin": "0", ".git/HEAD": "ref", "node_modules/m/i.js": "",
             "lib/__pycache__/util.cpython-311.pyc": "", ".venv/bin/python": "", ".mcpaas/store.db": ""}
    write_project(first, files)
    write_project(second, dict(reversed(files.items())))  # other creation order, other mtimes
    (second / "server.py").touch()
    one, two = pack(first), pack(second)
    assert one.data == two.data and one.digest == two.digest
    assert one.paths == [".mcpaasignore", "lib", "lib/util.py", "server.py"]
    with tarfile.open(fileobj=io.BytesIO(one.data)) as tar:
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in tar.getmembers()} == {(0, 0, 0, "")}
    (first / "server.py").write_text("x = 2\n")
    assert pack(first).digest != one.digest
    assert check_archive(one.data, LIMITS).files == 4


def test_packing_refuses_a_symlink_and_the_ignore_matches_the_watcher(tmp_path):
    write_project(tmp_path, {"server.py": "", ".mcpaasignore": "*.log\n"})
    (tmp_path / "link").symlink_to("/etc/passwd")
    with pytest.raises(CliError, match="link"):
        pack(tmp_path)
    ignore = Ignore(tmp_path)
    assert ignore.ignored_path(tmp_path / "run.log") and ignore.ignored_path(tmp_path / "node_modules" / "x")
    assert not ignore.ignored_path(tmp_path / "server.py") and ignore.ignored_path("/elsewhere/server.py")


def test_the_spec_path_becomes_the_digest_relative_to_the_spec_file(tmp_path):
    write_project(tmp_path / "proj", {"server.py": "print(1)\n"})
    data = {"name": "hello", "kind": "package", "package": {"command": "python", "args": ["server.py"],
                                                           "bundle": "."}}
    packed = resolve_bundle(data, tmp_path / "proj")
    assert packed is not None and data["package"]["bundle"] == packed.digest
    assert resolve_bundle(data, tmp_path) is None  # a digest is left alone
    assert ServerSpec.model_validate(data).package.bundle == packed.digest
    with pytest.raises(ValueError, match="pattern"):
        ServerSpec.model_validate({**data, "package": {**data["package"], "bundle": "."}})


def bundle_spec(digest: str, install: list[str] | None = None, command: str = "python") -> ServerSpec:
    return ServerSpec.model_validate({"name": "mine", "kind": "package", "owner_team": "team-a", "package": {
        "command": command, "args": ["server.py"], "bundle": digest, "install": install}})


def test_clearance_admits_an_uploaded_bundle_and_refuses_an_unknown_one(tmp_path):
    settings = Settings(data_dir=tmp_path)
    data = archive(member("server.py"))
    FilesystemArtifactStore(tmp_path / "artifacts").put(artifact_name(digest_of(data)), data)
    assert clearance.problems(bundle_spec(digest_of(data)), settings) == []
    unknown = clearance.problems(bundle_spec("sha256:" + "0" * 64), settings)
    assert [p["field"] for p in unknown] == ["package.bundle"] and "not been uploaded" in unknown[0]["message"]
    # a bundle does not widen the launcher rules
    refused = clearance.problems(bundle_spec(digest_of(data), command="bash"), settings)
    assert [p["field"] for p in refused] == ["package.command"]


@pytest.mark.parametrize("install, admitted", [
    (["pip", "install", "--target", "deps", "-r", "requirements.txt"], True),
    (["pip", "install", "-e", "."], True),
    (["npm", "install", "--omit=dev"], True),
    (["pip", "install", "-r", "/etc/requirements.txt"], False),
    (["pip", "install", "-r", "../other/requirements.txt"], False),
    (["pip", "install", "-r", "https://example.com/r.txt"], False),
    (["pip", "install", "--index-url", "./index", "x-mcp"], False),
    (["pip", "install", "git+https://example.com/x.git"], False),
])
def test_with_a_bundle_an_install_may_read_dependency_files_inside_it(tmp_path, install, admitted):
    settings = Settings(data_dir=tmp_path)
    data = archive(member("server.py"))
    FilesystemArtifactStore(tmp_path / "artifacts").put(artifact_name(digest_of(data)), data)
    assert (clearance.problems(bundle_spec(digest_of(data), install), settings) == []) is admitted
    without = ServerSpec.model_validate({"name": "x", "kind": "package", "package": {
        "command": "python", "args": ["server.py"], "install": install}})
    if install[0] == "pip":  # without a bundle every source stays refused
        assert clearance.problems(without, settings)


def test_dedicated_tenancy_takes_no_bundle():
    with pytest.raises(ValueError, match="dedicated tenancy does not take a code bundle"):
        ServerSpec.model_validate({"name": "x", "kind": "package", "tenancy": {"model": "dedicated",
                                   "params": ["project_id"]}, "package": {"command": "python",
                                                                          "bundle": "sha256:" + "a" * 64}})
