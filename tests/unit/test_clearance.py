"""Security clearance of package servers (FR-020, issue 10 item 3): launchers, inline code,
fetched packages and sources, environment hooks, under the default settings and widened."""

from __future__ import annotations

import pytest

from shared.clearance import ClearanceError, ensure_cleared, problems
from shared.models import ServerSpec
from shared.settings import Settings

DEFAULTS = Settings()


def package(argv: list[str], install: list[str] | None = None, env: dict[str, str] | None = None) -> ServerSpec:
    return ServerSpec.model_validate({"name": "s", "kind": "package", "package": {
        "command": argv[0], "args": argv[1:], "install": install, "env": env or {}}})


def messages(spec: ServerSpec, settings: Settings = DEFAULTS) -> list[str]:
    return [problem["message"] for problem in problems(spec, settings)]


INLINE = [
    ["sh", "-c", "id"], ["bash", "-c", "id"], ["dash", "-c", "id"], ["zsh", "-c", "id"], ["bash", "-ec", "id"],
    ["bash", "-o", "pipefail", "-c", "id"], ["sh", "-s"], ["sh"], ["sh", "-i"],
    ["python", "-c", "import os"], ["python3", "-c", "x"], ["python3.12", "-c", "x"], ["python", "-Ic", "x"],
    ["python", "-cimport os"], ["python", "-u", "-c", "x"], ["python", "-W", "ignore", "-c", "x"],
    ["python", "--check-hash-based-pycs", "always", "-c", "x"], ["python", "-"], ["python"],
    ["python", "-m", "timeit", "x"], ["python", "-mcode"], ["python", "-m", "asyncio"],
    ["node", "-e", "x"], ["node", "--eval", "x"], ["node", "--eval=x"], ["node", "-p", "x"], ["node", "--print", "x"],
    ["node", "-pe", "x"], ["node", "-i"], ["node", "-"], ["node"], ["node", "--title", "t", "-e", "x"],
    ["node", "--import=data:text/javascript,process.exit()", "s.js"], ["node", "-r", "data:text/javascript,x", "s.js"],
    ["node", "--run", "start"],
    ["deno", "eval", "x"], ["deno", "repl"], ["deno", "run", "-"], ["deno"],
    ["perl", "-e", "x"], ["perl", "-E", "x"], ["perl", "-ne", "x"], ["perl", "-le", "x"], ["perl"],
    ["ruby", "-e", "x"], ["ruby", "-ne", "x"], ["ruby"], ["php", "-r", "x"],
    ["pwsh", "-Command", "x"], ["pwsh", "-c", "x"], ["pwsh", "-command", "x"], ["pwsh", "-Comm", "x"],
    ["pwsh", "-EncodedCommand", "eAA="], ["pwsh", "-ec", "eAA="], ["pwsh", "-NoProfile", "-File", "-"], ["pwsh"],
    ["pwsh", "-NoExit", "-File", "s.ps1"], ["powershell", "Get-Process"],
    ["env", "sh", "-c", "x"], ["env", "-i", "A=1", "python", "-c", "x"], ["env", "-S", "python -c x"],
    ["busybox", "sh", "-c", "x"], ["uv", "run", "python", "-c", "x"], ["uv", "run", "--with", "mcp-x", "python", "-"],
    ["npx", "-c", "id"], ["npx", "--call", "id"], ["npm", "exec", "-c", "id"], ["npm", "x", "--call=id"],
    ["pnpm", "dlx", "--shell-mode", "mcp-x"], ["npm", "start"], ["npm", "run", "serve"],
    ["npm", "pkg", "set", "scripts.start=curl x | sh"], ["npm", "explore", "mcp-x", "--", "id"],
    ["npm", "--yes", "exec", "-c", "id"], ["uv", "--directory", "/srv", "run", "python", "-c", "x"],
]


@pytest.mark.parametrize("argv", INLINE, ids=" ".join)
def test_inline_code_and_stdin_programs_are_refused_by_default(argv):
    found = messages(package(argv))
    assert any(message.startswith("inline code is refused") for message in found), found
    widened = Settings(clearance_allow_inline_code=True, clearance_refused_launchers="",
                       clearance_launchers="*")
    assert not [m for m in messages(package(argv), widened) if m.startswith("inline code")]


@pytest.mark.parametrize("argv", [
    ["python", "-m", "catalog.echo.server"], ["python3", "-u", "-X", "dev", "server.py", "-c", "cfg.yaml"],
    ["python", "-W", "ignore", "server.py"], ["node", "server.js", "-e", "prod"],
    ["node", "--enable-source-maps", "s.js"],
    ["node", "--require=./hook.js", "s.js"], ["npx", "-y", "@modelcontextprotocol/server-everything", "stdio"],
    ["uvx", "mcp-server-time", "--local-timezone=UTC"], ["uvx", "mcp-server-time==2026.10"], ["mcp-server-time"],
    ["uvx", "--python", "3.12", "mcp-server-fetch"], ["uv", "run", "--with", "mcp-x", "mcp-server-x"],
    ["npx", "@azure/mcp@latest", "server", "start"], ["npm", "exec", "--package=@azure/mcp", "--", "azmcp"],
])
def test_named_programs_and_packages_pass_the_defaults(argv):
    assert messages(package(argv)) == []


@pytest.mark.parametrize("launcher", ["sh", "bash", "dash", "zsh", "busybox", "env", "/bin/sh", "/usr/bin/env"])
def test_shells_and_wrappers_are_refused_even_when_an_allowlist_glob_admits_them(launcher):
    settings = Settings(clearance_launchers="*,/*", clearance_allow_inline_code=True)
    assert any("is refused (a shell" in m for m in messages(package([launcher, "script"]), settings))


@pytest.mark.parametrize("command", ["/tmp/evil/python", "/usr/bin/python3", "/work/.venv/bin/python",
                                     "./node_modules/.bin/mcp-server-x", "../python"])
def test_paths_are_refused_unless_an_operator_lists_them(command):
    assert messages(package([command, "-m", "x"])) == [f"launcher '{command}' is not on the clearance allowlist"]
    widened = Settings(clearance_launchers=["python", "/usr/bin/*", "/work/.venv/bin/*",
                                            "./node_modules/.bin/*", "../python", "/tmp/evil/python"])
    assert messages(package([command, "-m", "x"]), widened) == []


@pytest.mark.parametrize(("argv", "fetched"), [
    (["npx", "-y", "left-pad"], "package 'left-pad'"),
    (["npx", "-p", "evil", "mcp-server-x"], "package 'evil'"),
    (["npx", "--package=evil", "mcp-server-x"], "package 'evil'"),
    (["npm", "exec", "--package", "evil", "--", "mcp-server-x"], "package 'evil'"),
    (["uvx", "--from", "evil", "mcp-server-x"], "package 'evil'"),
    (["uvx", "--with", "evil", "mcp-server-x"], "package 'evil'"),
    (["uvx", "--with=mcp-a,evil", "mcp-server-x"], "package 'evil'"),
    (["uv", "tool", "run", "evil"], "package 'evil'"),
    (["uv", "run", "--with", "evil", "mcp-server-x"], "package 'evil'"),
    (["pipx", "run", "--spec", "evil", "mcp-app"], "package 'evil'"),
    (["pnpm", "dlx", "evil"], "package 'evil'"),
    (["bunx", "evil"], "package 'evil'"),
    (["npx", "mcp-ok@npm:evil"], "package 'evil'"),
    (["pip", "install", "mcp-ok", "evil==1.0"], "package 'evil'"),
    (["python", "-m", "pip", "install", "evil"], "package 'evil'"),
    (["uv", "pip", "install", "evil"], "package 'evil'"),
    (["npm", "install", "-g", "mcp-ok", "evil"], "package 'evil'"),
    (["uv", "add", "evil"], "package 'evil'"),
    (["uv", "-q", "tool", "run", "evil"], "package 'evil'"),
    (["pip", "--isolated", "install", "evil"], "package 'evil'"),
    (["pip", "install", "git+https://example.invalid/mcp.git"], "package source 'git+https://example.invalid/mcp.git'"),
    (["pip", "install", "./mcp-pkg"], "package source './mcp-pkg'"),
    (["pip", "install", "mcp-x @ https://example.invalid/mcp_x.whl"], "package source 'mcp-x @ https://"),
    (["pip", "install", "-r", "requirements.txt"], "package source '-r requirements.txt'"),
    (["pip", "install", "-e", "."], "package source '-e .'"),
    (["pip", "install", "--index-url", "https://example.invalid/simple", "mcp-x"], "package source '--index-url https"),
    (["npm", "install", "file:../mcp"], "package source 'file:../mcp'"),
    (["npm", "install", "https://example.invalid/mcp-1.0.tgz"], "package source 'https://example.invalid/mcp-1.0.tgz'"),
    (["npm", "install", "mcp-1.0.tgz"], "package source 'mcp-1.0.tgz'"),
    (["npx", "someone/mcp-repo"], "package source 'someone/mcp-repo'"),
    (["npx", "mcp-x@github:someone/mcp"], "package source 'mcp-x@github:someone/mcp'"),
    (["npx", "--registry=https://example.invalid", "mcp-x"], "package source '--registry https://example.invalid'"),
    (["uvx", "--from", "git+https://example.invalid/mcp", "mcp-x"], "package source 'git+https://example.invalid/mcp'"),
    (["uv", "run", "https://example.invalid/mcp.py"], "package source 'https://example.invalid/mcp.py'"),
    (["deno", "run", "https://example.invalid/mcp.ts"], "package source 'https://example.invalid/mcp.ts'"),
])
def test_fetching_launchers_admit_named_packages_by_pattern_only(argv, fetched):
    settings = Settings(clearance_launchers="*")  # the launcher itself is not what is tested
    for field, spec in (("package.command", package(argv)), ("package.install", package(["mcp-server-x"], argv))):
        found = problems(spec, settings)
        assert any(p["field"] == field and p["message"].startswith(fetched) for p in found), found


def test_an_operator_widens_packages_and_sources_by_pattern():
    argv = ["npx", "-p", "@myorg/tools", "mcp-server-x"]
    assert messages(package(argv)) == ["package '@myorg/tools' is not on the clearance allowlist"]
    assert messages(package(argv), Settings(clearance_packages="*mcp*,@myorg/*")) == []
    git = ["pip", "install", "git+https://git.example.invalid/myorg/mcp.git"]
    settings = Settings(clearance_package_sources="git+https://git.example.invalid/myorg/*")
    assert messages(package(["mcp-server-x"], git), settings) == []
    assert messages(package(["mcp-server-x"], ["pip", "install", "git+https://elsewhere.invalid/x"]), settings)


@pytest.mark.parametrize("name", ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "NODE_OPTIONS", "PYTHONINSPECT",
                                  "BASH_ENV", "DYLD_INSERT_LIBRARIES"])
def test_loader_and_interpreter_hooks_cannot_be_set_in_env(name):
    spec = package(["mcp-server-time"], env={name: "x", "TZ": "UTC", "PYTHONPATH": "/srv/lib"})
    assert [p["field"] for p in problems(spec, DEFAULTS)] == [f"package.env.{name}"]
    assert problems(spec, Settings(clearance_refused_env="")) == []


def test_refusal_is_a_422_problem_listing_every_field():
    spec = package(["sh", "-c", "id"], install=["pip", "install", "git+https://example.invalid/x"],
                   env={"NODE_OPTIONS": "--require=x"})
    with pytest.raises(ClearanceError) as raised:
        ensure_cleared(spec, DEFAULTS)
    assert raised.value.status == 422
    assert {e["field"] for e in raised.value.extensions["errors"]} == {
        "package.command", "package.install", "package.env.NODE_OPTIONS"}
    assert len([e for e in raised.value.extensions["errors"] if e["field"] == "package.command"]) == 2  # shell and -c
