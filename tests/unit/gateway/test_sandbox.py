"""The sandbox's argv, limits, uids and refusals (gateway.children.sandbox), and log redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.models import NetworkAccess, PackageLimits, PackageSource, ServerSpec
from shared.settings import Settings

from gateway.children.logs import redactor
from gateway.children.sandbox import (Sandbox, SandboxRefusedError, SandboxUnavailableError,
                             allocation_failed, tree_rss)


def _spec(team: str = "", **package: object) -> ServerSpec:
    return ServerSpec(name="s", kind="package", owner_team=team,
                      package=PackageSource(command="python", **package))


def _option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_missing_bwrap_fails_the_start_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, prlimit or setpriv here
    with pytest.raises(SandboxUnavailableError, match="apt-get install -y bubblewrap"):
        Sandbox(Settings(data_dir=tmp_path, gateway_sandbox="bwrap")).check()


def test_data_dir_inside_a_shown_path_is_masked_and_own_dir_bound(tmp_path: Path) -> None:
    shown = tmp_path / "repo"
    (shown / ".mcpaas" / "servers").mkdir(parents=True)
    sandbox = Sandbox(Settings(data_dir=shown / ".mcpaas", sandbox_read_paths=[str(shown)]))
    argv = sandbox.wrap("s", _spec().package, ["python", "-m", "x"])
    data = str(shown.resolve() / ".mcpaas")
    own = str(shown.resolve() / ".mcpaas" / "servers" / "s")
    assert str(shown.resolve()) in _option(argv, "--ro-bind")
    # the mask comes after the read-only bind and before the own dir's bind
    assert argv.index(data) > argv.index(str(shown.resolve()))
    assert _option(argv, "--tmpfs") == ["/tmp", data]
    assert _option(argv, "--bind") == [own] and _option(argv, "--chdir") == [own]
    assert argv[-3:] == ["python", "-m", "x"] and "--unshare-net" not in argv
    assert {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
            "--new-session"} <= set(argv)


def test_network_none_unshares_the_network(tmp_path: Path) -> None:
    argv = Sandbox(Settings(data_dir=tmp_path)).wrap("s", _spec(network=NetworkAccess.NONE).package, ["x"])
    assert "--unshare-net" in argv


def test_spec_limits_override_defaults(tmp_path: Path) -> None:
    sandbox = Sandbox(Settings(data_dir=tmp_path, sandbox_processes=77, sandbox_cpu_seconds=9))
    argv = sandbox.wrap("s", _spec(limits=PackageLimits(memory_mb=100, open_files=64)).package, ["x"])
    assert {f"--data={200 * 1024 * 1024}", "--nproc=77", "--nofile=64", "--cpu=9",
            "--core=0"} <= set(argv)


@pytest.mark.skipif(os.geteuid() != 0, reason="per-server uids need a root gateway")
def test_each_server_gets_its_own_stable_uid(tmp_path: Path) -> None:
    sandbox = Sandbox(Settings(data_dir=tmp_path))
    uids = {sandbox.uid_for(name) for name in ("a", "b", "c", "proj.p1")}
    assert len(uids) == 4 and all(200_000 <= uid < 300_000 for uid in uids)
    assert sandbox.uid_for("a") == Sandbox(Settings(data_dir=tmp_path)).uid_for("a")
    argv = sandbox.wrap("a", _spec().package, ["x"])
    assert f"--reuid={sandbox.uid_for('a')}" in argv and "--clear-groups" in argv
    own = sandbox.prepare("a")
    assert own.stat().st_uid == sandbox.uid_for("a")


def test_without_sandbox_team_servers_need_an_opt_in(tmp_path: Path) -> None:
    sandbox = Sandbox(Settings(data_dir=tmp_path, gateway_sandbox="none",
                               gateway_unsandboxed_teams="trusted"))
    assert sandbox.wrap("s", _spec().package, ["x"]) == ["x"]
    sandbox.admit(_spec())
    sandbox.admit(_spec("trusted"))
    with pytest.raises(SandboxRefusedError, match="MCPAAS_GATEWAY_UNSANDBOXED_TEAMS"):
        sandbox.admit(_spec("payments"))
    Sandbox(Settings(data_dir=tmp_path)).admit(_spec("payments"))  # sandboxed: admitted


def test_redactor_hides_every_secret_value() -> None:
    redact = redactor(["s3cret-value", "abc", "s3cret"])
    assert redact("token=s3cret-value and s3cret, abc") == "token=[REDACTED] and [REDACTED], abc"


def test_allocation_failures_are_recognized() -> None:
    assert allocation_failed(["Traceback", "MemoryError"])
    assert allocation_failed(["FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"])
    assert not allocation_failed(["ValueError: bad input"])


def test_tree_rss_counts_this_process() -> None:
    assert tree_rss(os.getpid()) > 1024 * 1024
    assert tree_rss(2 ** 22 + 12345) == 0  # no such process
