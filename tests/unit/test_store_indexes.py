"""Every query the issue-12/14 containers run is index-served in the SQLite adapter
(issue 12 item 5: "every new container has the indexes its queries need on both stores").

The real functions of `shared.feedback`, `shared.apim`, `shared.costs` and `shared.quota`
run against a store that records each `query`; each recorded query is then explained.
Served means: an index narrows the search or walks the rows in the order asked (the
primary key searched by `container` alone is a scan of the container in disguise) and
no temporary B-tree sorts the result. Cosmos DB keeps a range index on every path by
default, which serves the same filters and single-field ORDER BY (shared/store/cosmos.py).
`checklists` is read by key only (`DocumentStore.read`), never queried.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from shared import apim, audit, costs, feedback, quota
from shared.errors import NotFoundError
from shared.store.paging import Page
from shared.store.sqlite import SQLiteDocumentStore

# the primary key (container, pk, id) used for its first column only: every row of the container
CONTAINER_ONLY = "sqlite_autoindex_documents_1 (container=?)"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


class Recording:
    """The real store, remembering the arguments of each `query` (to explain them)."""

    def __init__(self, inner: SQLiteDocumentStore) -> None:
        self.inner, self.calls, self.pages = inner, [], []

    def query(self, container: str, filters: dict[str, Any] | None = None, **options: Any) -> list[dict]:
        self.calls.append((container, filters, options))
        return self.inner.query(container, filters, **options)

    def read(self, container: str, doc_id: str, partition_key: str) -> dict:
        return self.inner.read(container, doc_id, partition_key)

    def query_page(self, container: str, filters: dict[str, Any] | None = None, **options: Any) -> Page:
        self.pages.append((container, filters, options))
        return self.inner.query_page(container, filters, **options)


def feedback_queries(store: Any) -> None:
    for kind in (None, feedback.ArtifactKind.RUNBOOK):
        for artifact_id in (None, "rotate-keys"):
            for status in (None, feedback.FeedbackStatus.NEW):
                feedback.query(store, kind=kind, artifact_id=artifact_id, status=status)
    feedback.summaries(store, "runbook")
    with pytest.raises(NotFoundError):
        feedback.set_status(store, "fb-1", feedback.FeedbackStatus.TRIAGED, "ops")


def apim_queries(store: Any) -> None:
    apim.list_index(store, "apim-prod", limit=100)
    with pytest.raises(NotFoundError):
        apim.find_index(store, "apim-prod", None)


def cost_queries(store: Any) -> None:
    since = NOW - timedelta(days=1)
    for filters in ({}, {"actor": "u1"}, {"tool": "t1"}, {"model": "m"}, {"actor": "u1", "tool": "t1"}):
        for server in (None, "echo"):
            costs.query_costs(store, group_by=["actor"], since=since, until=NOW, server=server, **filters)


def quota_queries(store: Any) -> None:
    quota.embedded_usage(store, {"gpt-4o": {"tokens_per_minute": 1000}}, NOW, 300, 60)
    quota.top_identities(store, "gpt-4o", NOW - timedelta(minutes=5), NOW)
    quota.advisories(store)
    quota.advisories(store, "gpt-4o", "open")
    quota.latest_usage(store, NOW - timedelta(minutes=5))


@pytest.mark.parametrize("run", [feedback_queries, apim_queries, cost_queries, quota_queries],
                         ids=lambda run: run.__name__)
def test_every_query_is_served_by_an_index_without_a_scan_or_sort(tmp_path, run) -> None:
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    recording = Recording(store)
    run(recording)
    assert recording.calls
    for container, filters, options in recording.calls:
        plan = store.explain(container, filters, **options)
        where = (container, filters, options, plan)
        assert all(step.startswith("SEARCH documents USING INDEX") for step in plan), where
        assert not any(step.endswith(CONTAINER_ONLY) or "TEMP B-TREE" in step for step in plan), where


def served(plan: list[str]) -> bool:
    return (all(step.startswith("SEARCH documents USING INDEX") for step in plan)
            and not any(step.endswith(CONTAINER_ONLY) or "TEMP B-TREE" in step for step in plan))


def paged_lists(store: Any) -> None:
    """The paged queries of the REST lists (docs/paging.md): servers, revisions, audit,
    each asked for a first page and, with its token, the next."""
    def twice(container: str, **query: Any) -> None:
        first = store.query_page(container, limit=2, **query)
        assert first.continuation, (container, query)
        store.query_page(container, limit=2, continuation=first.continuation, **query)

    twice("servers")
    twice("revisions", partition_key="echo", order_by="number", descending=True)
    for filters in ({}, {"actor": "alice"}, {"action": "servers.create"}, {"entity": "echo"},
                    {"actor": "alice", "entity": "echo"}):
        for since, until in ((None, None), (NOW - timedelta(days=3), None), (NOW - timedelta(days=3), NOW)):
            first = audit.query_audit(store, since=since, until=until, limit=2, **filters)
            assert first.continuation, filters
            audit.query_audit(store, since=since, until=until, limit=2, continuation=first.continuation, **filters)


def test_every_paged_list_is_served_by_an_index_on_every_page(tmp_path) -> None:
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    store.upsert_many("servers", [{"id": f"s{n}", "name": f"s{n}"} for n in range(5)])
    store.upsert_many("revisions", [{"id": f"echo.{n}", "server": "echo", "number": n} for n in range(5)])
    store.upsert_many("audit", [{"id": f"e{n}", "entity": "echo", "actor": "alice", "action": "servers.create",
                                 "time": f"{NOW - timedelta(hours=n):%Y-%m-%dT%H:%M:%S}.5Z"} for n in range(9)])
    recording = Recording(store)
    paged_lists(recording)
    assert len(recording.pages) == 34
    for container, filters, options in recording.pages:
        plan = store.explain_page(container, filters, **options)
        assert served(plan), (container, filters, options, plan)
        if options.get("continuation"):  # resumes by seeking the index, not by walking to the position
            assert "<?" in plan[0] or ">?" in plan[0], plan
