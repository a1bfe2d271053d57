"""Documentation freshness (NFR-OPS-004): core catalog entries and documentation templates
whose `last_updated` is more than 30 days old are flagged stale.

What is checked:
- catalog entries: ``catalog/<entry>/catalog.yaml`` beside each ``server.yaml``
  (`shared.catalog.EntryMeta`: ``title``, ``core``, ``last_updated`` among others); an entry without that file, or
  with one that does not parse, counts as core and stale (it was never reviewed);
- runbook templates: the ``last_updated`` of each template's front matter
  (`shared.runbooks.RunbookMeta`); every template is core, they are the platform's own docs.
Non-core entries are listed but never stale. Each newly stale item is audited once
(action ``docs.freshness``, result ``failed``, entity ``<kind>/<id>``, detail starting
``stale:``): the audit id derives from the item and its
`last_updated`, so a later review that goes stale again is audited again.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ValidationError

from shared import runbooks, servers
from shared.catalog import CATALOG_DIR, EntryMeta
from shared.store import DocumentStore

MAX_AGE_DAYS = 30  # NFR-OPS-004
REPO = CATALOG_DIR.parent
ACTOR = "freshness-check"


class Finding(BaseModel):
    """One checked item: `age_days` is None (and the item stale) when it has no date."""

    kind: Literal["catalog", "runbook"]
    id: str
    title: str
    path: str
    core: bool
    last_updated: date | None
    age_days: int | None
    stale: bool


def _finding(kind: Literal["catalog", "runbook"], item_id: str, title: str, path: Path, core: bool,
             last_updated: date | None, today: date) -> Finding:
    age = (today - last_updated).days if last_updated else None
    stale = core and (age is None or age > MAX_AGE_DAYS)
    return Finding(kind=kind, id=item_id, title=title, path=str(path.relative_to(REPO)), core=core,
                   last_updated=last_updated, age_days=age, stale=stale)


def catalog_findings(today: date, directory: Path = CATALOG_DIR) -> list[Finding]:
    """A finding per catalog entry (a folder with a ``server.yaml``), by entry name."""
    found = []
    for spec in sorted(directory.glob("*/server.yaml")):
        path = spec.parent / "catalog.yaml"
        try:
            meta: EntryMeta | None = EntryMeta.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError, ValidationError):
            meta = None  # unreviewed: flagged until someone writes its metadata
        name = spec.parent.name
        found.append(_finding("catalog", name, meta.title if meta else name, path, meta.core if meta else True,
                              meta.last_updated if meta else None, today))
    return found


def runbook_findings(today: date, directory: Path = runbooks.TEMPLATES_DIR) -> list[Finding]:
    """A finding per runbook template. Raises RunbookError for a malformed template."""
    return [_finding("runbook", template.meta.id, template.meta.title, template.path, True,
                     template.meta.last_updated, today)
            for template in runbooks.load_library(directory).values()]


def check(today: date) -> list[Finding]:
    """Every checked item as of `today` (UTC date), catalog first."""
    return catalog_findings(today) + runbook_findings(today)


def audit_stale(store: DocumentStore, found: list[Finding]) -> int:
    """Audit each stale finding once (see the module docstring); how many are stale."""
    stale = [finding for finding in found if finding.stale]
    for finding in stale:
        stamp = finding.last_updated.isoformat() if finding.last_updated else "undated"
        detail = "stale: " + (f"last updated {stamp}, {finding.age_days} days ago" if finding.age_days is not None
                  else "no last_updated metadata") + f" (limit {MAX_AGE_DAYS} days): {finding.path}"
        servers.audit(store, operation_id=f"freshness.{finding.kind}.{finding.id}.{stamp}", actor=ACTOR,
                      action="docs.freshness", entity=f"{finding.kind}/{finding.id}", result="failed",
                      detail=detail)
    return len(stale)
