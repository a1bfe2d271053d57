"""A small purpose-built reader of Bicep files (no `az`/bicep CLI here).

It finds `resource` declarations (symbol, type, API version, `existing`, loop, condition) and the
text of each body by brace matching that skips string literals, which is enough to
assert what a resource declares. It is not a Bicep parser: expressions stay text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_DECL = re.compile(r"^resource\s+(\w+)\s+'([^'@]+)@([^']+)'\s+(existing\s+)?=\s*(\[for\s[^:]+:\s*)?"
                   r"(if\s*\(.*?\)\s*)?\{", re.MULTILINE)


@dataclass(frozen=True)
class Resource:
    """One `resource` declaration; `body` is the text between its outer braces."""

    symbol: str
    type: str
    api_version: str
    existing: bool
    loop: bool
    body: str
    file: str
    conditional: bool = False  # `= if (condition) { ... }`: deployed only when the condition holds

    def value(self, key: str) -> str | None:
        """The text after the first `key:` anywhere in the body (one line), or None."""
        match = re.search(rf"^\s*'?{re.escape(key)}'?:\s*(.+?)\s*$", self.body, re.MULTILINE)
        return match.group(1) if match else None

    def block(self, key: str) -> str:
        """The text of the first `key: { ... }` object in the body ('' if absent)."""
        match = re.search(rf"^\s*{re.escape(key)}:\s*\{{", self.body, re.MULTILINE)
        return _braced(self.body, match.end() - 1) if match else ""

    @property
    def top_level(self) -> bool:
        """A new Azure resource with a location (not a child, role assignment or reference)."""
        return not self.existing and self.value("location") is not None


def _braced(text: str, start: int) -> str:
    """Text inside the brace at `start` up to its match, skipping '...' strings."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == "'":
                in_string = False
        elif char == "'":
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
        i += 1
    raise ValueError(f"unbalanced braces from offset {start}")


def read_resources(folder: Path) -> list[Resource]:
    """Every resource declared in the `.bicep` files under `folder`."""
    resources = []
    for path in sorted(folder.rglob("*.bicep")):
        text = path.read_text()
        text_no_comments = re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)
        for match in _DECL.finditer(text_no_comments):
            body = _braced(text_no_comments, match.end() - 1)
            resources.append(Resource(match.group(1), match.group(2), match.group(3), bool(match.group(4)),
                                      bool(match.group(5)), body, path.name, bool(match.group(6))))
    return resources
