"""`mcpaas dev` before anything runs (cli/dev.py): the dev server's name, the project spec it
deploys, and the projects it refuses. The loop itself runs end to end in tests/e2e/test_dev.py."""

from __future__ import annotations

import pytest

from cli import dev
from cli.errors import CliError
from cli.state import CliState


def project(root, spec: str = "name: hello\npackage:\n  command: python\n  args: [server.py]\n"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "mcpaas.yaml").write_text(spec)
    (root / "server.py").write_text("print('hi')\n")
    return root


def test_the_dev_server_is_named_after_the_spec_and_stays_a_dns_label():
    assert dev.dev_name("hello") == "hello-dev"
    assert dev.dev_name("hello-dev") == "hello-dev"
    long = dev.dev_name("a" * 62 + "-b")
    assert len(long) <= 63 and long.endswith("-dev")


def test_a_project_deploys_as_a_package_bundling_its_own_directory(tmp_path):
    spec, packed = dev.load(project(tmp_path / "p"), None)
    assert spec.name == "hello-dev" and spec.kind.value == "package"
    assert spec.package.bundle == packed.digest and packed.paths == ["mcpaas.yaml", "server.py"]
    assert dev.load(tmp_path / "p", "mine")[0].name == "mine"


@pytest.mark.parametrize("spec, words", [
    (None, "has no mcpaas.yaml"),
    ("name: x\nkind: remote\nremote:\n  url: https://example.com/mcp\n", "package servers"),
    ("name: x\npackage:\n  command: python\n  bundle: sha256:" + "a" * 64 + "\n", "not a digest"),
])
def test_projects_dev_cannot_serve_are_refused_with_what_to_do(tmp_path, spec, words):
    root = tmp_path / "p"
    root.mkdir()
    if spec:
        (root / "mcpaas.yaml").write_text(spec)
    with pytest.raises(CliError, match=words):
        dev.load(root, None)


def test_a_data_dir_inside_the_project_must_be_ignored(tmp_path):
    root = project(tmp_path / "p")
    with pytest.raises(CliError, match="lies inside the project"):
        dev.run(CliState(api_url="http://127.0.0.1:9"), root, None, lambda *a: {}, gateway_port=9,
                data_dir=root / "state", timeout=1)
