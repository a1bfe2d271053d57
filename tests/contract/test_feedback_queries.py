"""`shared.feedback`'s queries give the same answers on both stores (issue 12 item 5: the
new containers' queries on SQLite and Cosmos). That SQLite serves each from an index is
tests/unit/test_store_indexes.py; Cosmos serves them from its default range indexes."""

from __future__ import annotations

from shared import feedback
from shared.feedback import ArtifactKind, Feedback, FeedbackStatus

KIND = {0: ArtifactKind.RUNBOOK, 1: ArtifactKind.TEMPLATE, 2: ArtifactKind.CATALOG}


def seed(store) -> list[Feedback]:
    entries = [Feedback(id=f"2026030212{n:04d}-fb", server=f"{KIND[n % 3].value}:a{n % 2}",
                        artifact_kind=KIND[n % 3], artifact_id=f"a{n % 2}", rating=1 + n % 5,
                        author=f"user{n % 4}", status=FeedbackStatus.TRIAGED if n % 4 == 0 else FeedbackStatus.NEW)
               for n in range(24)]
    store.upsert_many("feedback", [entry.model_dump(mode="json") for entry in entries])
    return entries


def ids(entries: list[Feedback]) -> list[str]:
    return [entry.id for entry in entries]


def test_filters_partitions_and_newest_first_agree_with_the_data(store) -> None:
    entries = seed(store)
    newest = sorted(entries, key=lambda entry: entry.id, reverse=True)
    runbooks = [e for e in newest if e.artifact_kind is ArtifactKind.RUNBOOK]
    assert ids(feedback.query(store, limit=5)) == ids(newest[:5])
    assert ids(feedback.query(store, kind=ArtifactKind.RUNBOOK)) == ids(runbooks)
    assert ids(feedback.query(store, kind=ArtifactKind.RUNBOOK, artifact_id="a1")) == ids(
        [e for e in runbooks if e.artifact_id == "a1"])
    assert ids(feedback.query(store, status=FeedbackStatus.TRIAGED)) == ids(
        [e for e in newest if e.status is FeedbackStatus.TRIAGED])
    assert ids(feedback.query(store, artifact_id="a0", status=FeedbackStatus.NEW)) == ids(
        [e for e in newest if e.artifact_id == "a0" and e.status is FeedbackStatus.NEW])
    summary = feedback.summaries(store, "template")
    templates = [e for e in entries if e.artifact_kind is ArtifactKind.TEMPLATE]
    assert {key: value["count"] for key, value in summary.items()} == {
        "a0": sum(e.artifact_id == "a0" for e in templates), "a1": sum(e.artifact_id == "a1" for e in templates)}


def test_status_change_finds_an_entry_by_id_across_partitions(store) -> None:
    target = seed(store)[7]
    before, after = feedback.set_status(store, target.id, FeedbackStatus.RESOLVED, "ops")
    assert (before.status, after.status, after.status_by) == (FeedbackStatus.NEW, FeedbackStatus.RESOLVED, "ops")
    assert ids(feedback.query(store, status=FeedbackStatus.RESOLVED)) == [target.id]
