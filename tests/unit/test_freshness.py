"""Freshness rules (NFR-OPS-004): which catalog entries and templates are stale, audited once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from shared import freshness
from shared.store import SQLiteDocumentStore

TODAY = date(2027, 3, 31)


def entry(root: Path, name: str, meta: str | None) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "server.yaml").write_text(f"name: {name}\nkind: remote\nremote: {{url: https://x.example}}\n")
    if meta is not None:
        (folder / "catalog.yaml").write_text(meta)


@pytest.fixture
def catalog(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "catalog"
    entry(root, "fresh", "title: Fresh\nlast_updated: 2027-03-01\n")  # 30 days: still fresh
    entry(root, "old", "title: Old\nlast_updated: 2027-02-28\n")  # 31 days
    entry(root, "old-extra", "title: Old extra\ncore: false\nlast_updated: 2020-01-01\n")
    entry(root, "undated", None)
    entry(root, "broken", "title: [unclosed\n")
    monkeypatch.setattr(freshness, "REPO", tmp_path)
    return root


def test_core_entries_older_than_30_days_or_undated_are_stale(catalog):
    found = {f.id: f for f in freshness.catalog_findings(TODAY, catalog)}
    assert {name: (f.stale, f.age_days) for name, f in found.items()} == {
        "broken": (True, None), "fresh": (False, 30), "old": (True, 31), "old-extra": (False, 2646),
        "undated": (True, None)}
    assert found["old"].path == "catalog/old/catalog.yaml" and found["old"].title == "Old"


def test_each_stale_item_is_audited_once_per_review(catalog, tmp_path):
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    found = freshness.catalog_findings(TODAY, catalog)
    assert freshness.audit_stale(store, found) == 3
    assert freshness.audit_stale(store, found) == 3  # the next day's check: nothing new
    events = store.query("audit", {"action": "docs.freshness"})
    assert sorted(e["entity"] for e in events) == ["catalog/broken", "catalog/old", "catalog/undated"]
    assert all(e["actor"] == "freshness-check" and e["result"] == "failed" and e["detail"].startswith("stale: ")
               for e in events)
    # reviewed, then stale again later: audited again
    (catalog / "old" / "catalog.yaml").write_text("title: Old\nlast_updated: 2027-03-10\n")
    freshness.audit_stale(store, freshness.catalog_findings(date(2027, 5, 1), catalog))
    assert len(store.query("audit", {"entity": "catalog/old"})) == 2


def test_the_repository_catalog_and_runbooks_are_fresh_today_and_stale_in_a_year():
    found = freshness.check(date(2026, 12, 1))
    assert {f.kind for f in found} == {"catalog", "runbook"} and ("catalog", "echo") in {(f.kind, f.id) for f in found}
    assert not [f for f in found if f.stale]
    assert all(f.stale for f in freshness.check(date(2027, 12, 1)))
