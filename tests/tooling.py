"""Locate the command-line tools that `make install` puts in `.venv-tools`.

Tests that need one fail loudly (never skip) when it is missing, so CI cannot pass
without the scan having run.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS_BIN = REPO / ".venv-tools" / "bin"


def tool(name: str) -> str:
    """Absolute path of tool `name` (e.g. ``checkov``, ``kubernetes-validate``).

    Raises AssertionError naming the install step when it is absent.
    """
    path = TOOLS_BIN / name
    assert path.exists(), f"{path} missing: run `make install` (installs tools-requirements.txt)"
    return str(path)
