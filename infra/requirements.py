"""Render `requirements.txt` (what the Azure Functions deployment installs) from
`pyproject.toml`, the one source of truth for dependencies (issue 11, item 1).

The Functions build (Oryx remote build, or `func pack`) installs `requirements.txt` only;
the control plane imports `shared/`, which the gateway and CLI share, so the deployment
gets the project's runtime dependencies: `[project].dependencies`, nothing from extras.

Usage: `python infra/requirements.py > requirements.txt` (`make requirements`);
`tests/infra/test_requirements.py` fails when the two drift.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
HEADER = ("# Generated from pyproject.toml by `make requirements` (infra/requirements.py): do not edit.\n"
          "# What the Azure Functions deployment of the control plane (function_app.py) installs.\n")


def render(pyproject: Path = PYPROJECT) -> str:
    """The text of requirements.txt: a header, then one requirement per line, in
    pyproject order (PEP 508 strings, environment markers kept)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return HEADER + "".join(f"{requirement}\n" for requirement in project["dependencies"])


if __name__ == "__main__":
    sys.stdout.write(render())
