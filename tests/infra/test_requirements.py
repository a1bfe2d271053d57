"""requirements.txt is what the Functions deployment installs (issue 11, item 1): it is
rendered from pyproject.toml, and a clean virtual environment made from it alone imports
`function_app` and registers every function the development install registers."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

from tests.tooling import REPO

sys.path.insert(0, str(REPO / "infra"))
import requirements  # noqa: E402  (infra/requirements.py, not a package)

LIST_FUNCTIONS = ("import json, function_app; "
                  "print(json.dumps(sorted(f.get_function_name() for f in function_app.app.get_functions())))")


def functions_of(python: Path | str) -> list[str]:
    """Names of the functions `function_app` registers, imported by `python` from the
    repo's source tree (cwd), in a child with no MCPAAS_ settings."""
    done = subprocess.run([str(python), "-c", LIST_FUNCTIONS], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_requirements_txt_is_rendered_from_pyproject() -> None:
    assert (REPO / "requirements.txt").read_text() == requirements.render(), \
        "requirements.txt drifted from pyproject.toml: run `make requirements`"


def test_a_clean_venv_from_requirements_alone_registers_every_function(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    # the Functions build runs a current pip; Python 3.11's bundled one resolves worse
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True, timeout=300)
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "-r", str(REPO / "requirements.txt")], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    deployed = functions_of(python)
    assert len(deployed) > 20  # the blueprints really registered
    assert deployed == functions_of(sys.executable)
