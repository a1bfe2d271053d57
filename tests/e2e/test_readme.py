"""The README's snippets run as written (issue 13 item 6) against the platform `make run` starts.

Every fenced block of README.md with a language is checked, in document order:
`sh`/`bash` blocks run in bash (`-e`: the first failing command fails the test), `python`
blocks run in the project's venv, `json`/`yaml` blocks must parse (a YAML spec with a
`kind` must validate as a ServerSpec), and a ```` ```text expected ```` block lists lines
that the runnable block before it must print (the runbooks' convention, shared/runbooks.py).
A block that cannot run here says why in a comment on the line before it:
``<!-- readme-test: skip REASON -->``. Untagged blocks (diagrams) are prose.

The snippets run from a workspace laid out like the repository as a user sees it (`.venv`,
`catalog`, and `make run`'s data dir `.mcpaas`); the platform listens on free ports, so the
only change made to a snippet is the port of its `127.0.0.1:7071` / `127.0.0.1:8080` URLs,
and the CLI gets the same through `MCPAAS_API_URL`.

The README's requirements are checked too: every program a test looks up is one `make
deps` installs (or the README lists), and `make deps` without root stops with the
`apt-get` line to run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from shared.models import ServerSpec
from shared.runbooks import expected_missing
from tests.e2e.conftest import REPO, free_port
from tests.e2e.test_make_run import read_until, stop_within

README = REPO / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b\s*(?P<reason>.*?)\s*-->", re.DOTALL)
RUNNABLE = {"sh", "bash", "python"}
PARSED = {"json", "yaml"}
EXPECTED = "text expected"


@dataclass(frozen=True)
class Snippet:
    """One fenced block: its info string, code, 1-based line, skip reason, and the lines
    the next ```` ```text expected ```` block says it prints (None when none follows)."""

    info: str
    code: str
    line: int
    skip: str | None
    expected: str | None = None


def snippets(markdown: str) -> list[Snippet]:
    """The fenced blocks of `markdown` with a language, in order (CommonMark, markdown-it)."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    found: list[Snippet] = []
    for index, token in enumerate(tokens):
        if token.type != "fence" or not token.info.strip():
            continue
        before = tokens[index - 1] if index else None
        marker = SKIP.search(before.content) if before is not None and before.type == "html_block" else None
        info, line = token.info.strip(), token.map[0] + 1 if token.map else 0
        if info == EXPECTED and found and found[-1].info in RUNNABLE:
            found[-1] = Snippet(found[-1].info, found[-1].code, found[-1].line, found[-1].skip, token.content)
            continue
        found.append(Snippet(info, token.content, line, marker.group("reason") if marker else None))
    return found


SNIPPETS = snippets(README.read_text(encoding="utf-8"))


def test_every_tagged_block_is_checked_or_says_why_not():
    unknown = [s for s in SNIPPETS if s.skip is None and s.info not in RUNNABLE | PARSED]
    assert not unknown, f"README blocks of no known kind (tag them, or mark them skip): {unknown}"
    assert all(s.skip for s in SNIPPETS if s.skip is not None), "a readme-test skip needs a reason"
    assert any(s.info == "python" and s.skip is None for s in SNIPPETS)  # the client snippet runs
    # a skip marker that precedes no block would silently stop guarding anything
    assert len(SKIP.findall(README.read_text(encoding="utf-8"))) == sum(s.skip is not None for s in SNIPPETS)


@dataclass
class Workspace:
    """Where the snippets run, and the ports `make run` listens on."""

    path: Path
    api_port: int
    gateway_port: int

    def localize(self, code: str) -> str:
        return (code.replace("127.0.0.1:7071", f"127.0.0.1:{self.api_port}")
                .replace("127.0.0.1:8080", f"127.0.0.1:{self.gateway_port}"))

    def env(self) -> dict[str, str]:
        return {**os.environ, "MCPAAS_API_URL": f"http://127.0.0.1:{self.api_port}",
                "MCPAAS_GATEWAY_URL": f"http://127.0.0.1:{self.gateway_port}", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def made_run(tmp_path_factory) -> Iterator[Workspace]:
    """`make run` on free ports with its data dir in a fresh workspace; stopped with Ctrl-C."""
    path = tmp_path_factory.mktemp("readme")
    for name in (".venv", "catalog"):
        (path / name).symlink_to(REPO / name)
    workspace = Workspace(path, free_port(), free_port())
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as test_make_run: Ctrl-C must still stop it
    try:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"API_PORT={workspace.api_port}",
             f"GATEWAY_PORT={workspace.gateway_port}", f"DATA_DIR={path / '.mcpaas'}"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "COLUMNS": "200"})
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        read_until(process, "MCPaaS is up", timeout=120)
        yield workspace
    finally:
        os.killpg(process.pid, signal.SIGINT)
        stop_within(process, 30, path / ".mcpaas" / "logs")


def _run(snippet: Snippet, workspace: Workspace) -> subprocess.CompletedProcess[str]:
    code = workspace.localize(snippet.code)
    if snippet.info == "python":
        script = workspace.path / f"readme_{snippet.line}.py"
        script.write_text(code, encoding="utf-8")
        argv = [".venv/bin/python", script.name]  # as the README says to run it
    else:
        argv = ["bash", "-e", "-c", code]
    return subprocess.run(argv, cwd=workspace.path, env=workspace.env(), capture_output=True, text=True,
                          timeout=240)


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.skip is None and s.info in RUNNABLE],
                         ids=lambda s: f"README.md:{s.line}")
def test_runnable_snippet_runs_as_written(made_run, snippet):
    done = _run(snippet, made_run)
    assert done.returncode == 0, f"README.md:{snippet.line} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    if snippet.expected is not None:
        missing = expected_missing(snippet.expected, done.stdout)
        assert not missing, f"README.md:{snippet.line} did not print {missing}:\n{done.stdout}"


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.skip is None and s.info in PARSED],
                         ids=lambda s: f"README.md:{s.line}")
def test_data_snippet_parses(snippet):
    document = json.loads(snippet.code) if snippet.info == "json" else yaml.safe_load(snippet.code)
    assert isinstance(document, dict), f"README.md:{snippet.line} is not a mapping"
    if snippet.info == "yaml" and "kind" in document:
        ServerSpec.model_validate(document)


def _test_deps() -> dict[str, str]:
    """The Makefile's `TEST_DEPS`: binary -> Debian package."""
    line = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("TEST_DEPS :="))
    return dict(pair.split(":", 1) for pair in line.split(":=", 1)[1].split())


def test_every_program_the_tests_look_up_is_installed_by_make_deps_or_listed_in_the_readme():
    looked_up = {match.group(1) for path in (REPO / "tests").rglob("*.py")
                 for match in re.finditer(r"""shutil\.which\(["']([\w.-]+)["']\)""", path.read_text(encoding="utf-8"))}
    readme_lists = {"node", "npm", "make", "python3"}  # the README's requirements, not apt-installed by make
    assert looked_up, "found no shutil.which lookups: the pattern is stale"
    assert looked_up - readme_lists <= set(_test_deps()), looked_up - readme_lists - set(_test_deps())


def test_make_deps_without_root_stops_and_prints_the_apt_line():
    with tempfile.TemporaryDirectory() as folder:  # a copy `nobody` can read wherever the checkout is
        os.chmod(folder, 0o755)
        shutil.copy(REPO / "Makefile", folder)
        argv = ["make", "--no-print-directory", "-C", folder, "deps",
                "TEST_DEPS=bwrap:bubblewrap no-such-program-x1:no-such-package-x1"]
        if os.geteuid() == 0:  # as root it would apt-get install: drop to nobody, as a developer's shell is
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "sudo apt-get install -y no-such-package-x1" in done.stdout
    assert "bubblewrap" not in done.stdout  # only what is missing


def test_make_deps_is_quiet_when_everything_is_there():
    done = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "deps"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
