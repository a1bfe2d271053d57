"""The import rules between layers (docs/architecture.md, "Rules that keep it simple"):
triggers never import activities or the gateway, and `shared/` imports none of the
deployables. A client both sides need (Kubernetes, the gateway's admin routes) lives in
`shared/`. Checked on the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {"triggers": ("activities", "gateway", "orchestrators"),
             "shared": ("activities", "gateway", "orchestrators", "triggers", "devhost", "cli")}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_no_layer_above_it(layer: str) -> None:
    offenders = [f"{path.relative_to(REPO)} imports {module}"
                 for path in sorted((REPO / layer).rglob("*.py"))
                 for module in sorted(imported_modules(path))
                 if module.split(".")[0] in FORBIDDEN[layer]]
    assert offenders == []


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from activities import kubernetes\n    import gateway.children.logs\n")
    assert imported_modules(module) == {"activities", "gateway.children.logs"}
