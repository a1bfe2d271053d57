"""SQLite persistence: atomic work completion and instance lifecycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from devhost.durable import events as ev
from devhost.durable.history import (
    DurableStore,
    EpisodeCommit,
    InstanceExists,
    NewInstance,
    WorkItem,
)

NOW = ev.utcnow()


@pytest.fixture
def store(tmp_path: Path) -> DurableStore:
    s = DurableStore(tmp_path / "durable.sqlite")
    yield s
    s.close()


def _create(store: DurableStore, instance_id: str = "i1") -> str:
    store.create_instance(NewInstance(instance_id, "orch", None,
                                      ev.execution_started(NOW, "orch", None)), NOW)
    inst = store.get_instance(instance_id)
    assert inst is not None and inst.status == "Pending"
    return inst.execution_id


def test_live_instance_cannot_be_recreated(store: DurableStore) -> None:
    _create(store)
    with pytest.raises(InstanceExists):
        _create(store)


def test_episode_commit_and_single_completion(store: DurableStore) -> None:
    execution = _create(store)
    [(seq, started)] = store.inbox("i1")
    item = WorkItem("i1", execution, 0, "activity", "act", '"x"')
    events = [ev.orchestrator_started(NOW), started, ev.task_scheduled(NOW, 0, "act", '"x"'),
              ev.orchestrator_completed(NOW)]
    assert store.commit_episode(EpisodeCommit("i1", execution, seq, events, "Running",
                                              work=[item]), NOW)
    assert store.inbox("i1") == [] and len(store.history("i1")) == 4
    assert store.pending_activities() == [item]

    done = ev.task_completed(NOW, 0, '"ok"')
    assert store.complete_work(item, done) is True
    assert store.complete_work(item, done) is False  # a second completion is dropped
    assert [e for _, e in store.inbox("i1")] == [done]
    assert store.pending_activities() == []


def test_commit_for_stale_execution_is_refused(store: DurableStore) -> None:
    _create(store)
    [(seq, _)] = store.inbox("i1")
    assert not store.commit_episode(EpisodeCommit("i1", "old-execution", seq, [], "Running"),
                                    NOW)
    assert len(store.inbox("i1")) == 1


def test_terminal_instance_refuses_messages_and_can_be_replaced(store: DurableStore) -> None:
    execution = _create(store)
    [(seq, _)] = store.inbox("i1")
    store.commit_episode(EpisodeCommit("i1", execution, seq, [], "Completed", output="1"), NOW)
    assert store.enqueue("i1", ev.event_raised(NOW, "e", None)) == "gone"
    assert store.enqueue("nope", ev.event_raised(NOW, "e", None)) == "missing"
    assert _create(store) != execution  # a finished id may be reused
    assert store.history("i1") == []


def test_timers_come_due(store: DurableStore, tmp_path: Path) -> None:
    execution = _create(store)
    [(seq, _)] = store.inbox("i1")
    timer = WorkItem("i1", execution, 1, "timer", fire_at=ev.fmt(NOW))
    store.commit_episode(EpisodeCommit("i1", execution, seq, [], "Running", work=[timer]), NOW)
    assert store.next_timer_at() == ev.fmt(NOW)
    assert store.due_timers(NOW) == [timer]
    reopened = DurableStore(tmp_path / "durable.sqlite")  # survives a reopen
    assert reopened.due_timers(NOW) == [timer]
    reopened.close()
