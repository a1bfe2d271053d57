"""The durable worker: replays orchestrations, runs activities, fires timers.

One asyncio task (started in the Starlette lifespan) loops: fire due timers, start
pending activities (bounded concurrency), then run one replay episode per instance
with queued messages. Episodes run one at a time on the loop, so replay of an
instance is always serialised. It sleeps until :meth:`DurableEngine.wake` is called
(start, event, terminate, activity finished) or the next timer is due.

On start-up everything pending in SQLite is picked up again: queued messages are
replayed, activities with no recorded completion are re-run, overdue timers fire.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from azure.durable_functions.models.history import HistoryEventType
from opentelemetry import trace

from devhost.durable import events
from devhost.durable.functions import DurableFunctions, run_activity
from devhost.durable.history import (
    DurableStore,
    EpisodeCommit,
    Instance,
    InstanceExists,
    NewInstance,
    WorkItem,
)
from devhost.durable.replay import (
    NewWork,
    Outcome,
    UnsupportedAction,
    context_json,
    run_episode,
)

from shared.telemetry import extract_context

log = logging.getLogger("devhost.durable")
_tracer = trace.get_tracer("mcpaas.devhost")

_TERMINATED = int(HistoryEventType.EXECUTION_TERMINATED)
_MAX_SLEEP = 1.0  # seconds; a safety net, wake() normally ends the wait earlier


class UnknownOrchestrator(LookupError):
    """No orchestrator function with that name is registered."""


class DurableEngine:
    """Durable Task host for one FunctionApp over one :class:`DurableStore`.

    Args:
        functions: the app's orchestrators and activities.
        path: the SQLite file; opened by :meth:`start_worker`, closed by
            :meth:`stop_worker`.
        max_activities: activities allowed to run concurrently.
    """

    def __init__(self, functions: DurableFunctions, path: Path,
                 max_activities: int = 8) -> None:
        self.functions = functions
        self._path = path
        self._store: DurableStore | None = None
        self._max_activities = max_activities
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._running: dict[tuple[str, int, str], asyncio.Task[None]] = {}
        self._slots: asyncio.Semaphore | None = None

    @property
    def store(self) -> DurableStore:
        """The open store.

        Raises:
            RuntimeError: the worker is not started.
        """
        if self._store is None:
            raise RuntimeError("durable engine is not started")
        return self._store

    # ---- client operations (called by the management API) ---------------------------
    def start(self, name: str, instance_id: str, input_json: str | None,
              trace_parent: str | None = None) -> None:
        """Create an instance; its first episode runs on the worker.

        `trace_parent` is the W3C traceparent of the caller, inherited by activities.

        Raises:
            UnknownOrchestrator: ``name`` is not a registered orchestrator.
            InstanceExists: ``instance_id`` is Pending or Running.
        """
        if name not in self.functions.orchestrators:
            raise UnknownOrchestrator(name)
        now = events.utcnow()
        self.store.create_instance(NewInstance(
            instance_id, name, input_json,
            events.execution_started(now, name, input_json, trace_parent=trace_parent)),
            now)
        self.wake()

    def raise_event(self, instance_id: str, name: str, input_json: str | None) -> str:
        """Queue an EventRaised; returns ``ok``, ``missing`` or ``gone``."""
        result = self.store.enqueue(instance_id,
                                    events.event_raised(events.utcnow(), name, input_json))
        self.wake()
        return result

    def terminate(self, instance_id: str, reason: str | None) -> str:
        """Queue an ExecutionTerminated; returns ``ok``, ``missing`` or ``gone``."""
        result = self.store.enqueue(instance_id,
                                    events.execution_terminated(events.utcnow(), reason))
        self.wake()
        return result

    # ---- lifecycle -------------------------------------------------------------------
    def wake(self) -> None:
        """Ask the worker to look for work now (safe to call from the loop thread)."""
        self._wake.set()

    async def start_worker(self) -> None:
        """Open the store and start the background worker on the running loop."""
        self._store = DurableStore(self._path)
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self._max_activities)
        self._worker = asyncio.create_task(self._loop(), name="devhost-durable-worker")
        self.wake()

    async def stop_worker(self) -> None:
        """Stop the worker, cancel running activities (their work stays pending), close."""
        tasks = [t for t in [self._worker, *self._running.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None
        self._running.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    async def _loop(self) -> None:
        while True:
            # Clear first: a wake() during this pass must trigger another pass.
            self._wake.clear()
            try:
                self._fire_due_timers()
                self._start_activities()
                self._run_episodes()
            except Exception:  # keep the worker alive; the next pass retries
                log.exception("durable worker pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self._sleep_seconds())
            except TimeoutError:
                pass

    def _sleep_seconds(self) -> float:
        next_at = self.store.next_timer_at()
        if next_at is None:
            return _MAX_SLEEP
        delay = (events.parse(next_at) - events.utcnow()).total_seconds()
        return max(0.0, min(delay, _MAX_SLEEP))

    # ---- timers and activities -------------------------------------------------------
    def _fire_due_timers(self) -> None:
        now = events.utcnow()
        for timer in self.store.due_timers(now):
            if self.store.complete_work(timer, events.timer_fired(now, timer.task_id,
                                                                  timer.fire_at or "")):
                self.wake()  # the TimerFired needs an episode

    def _start_activities(self) -> None:
        for item in self.store.pending_activities():
            key = (item.instance_id, item.task_id, item.execution_id)
            if key not in self._running:
                self._running[key] = asyncio.create_task(self._activity(key, item))

    async def _activity(self, key: tuple[str, int, str], item: WorkItem) -> None:
        try:
            assert self._slots is not None
            async with self._slots:
                activity = self.functions.activities.get(item.name or "")
                with _activity_span(item.name or "", self._trace_parent(item.instance_id)):
                    event = await run_activity(activity, item.name or "", item.task_id, item.input)
            # Atomic: the completion enters the inbox iff the work row still exists.
            if self.store.complete_work(item, event):
                self.wake()
        finally:
            self._running.pop(key, None)

    def _trace_parent(self, instance_id: str) -> str | None:
        """The traceparent recorded on the instance's ExecutionStarted, if any."""
        started = self.store.execution_started(instance_id)
        return ((started or {}).get("ParentTraceContext") or {}).get("TraceParent")

    # ---- episodes --------------------------------------------------------------------
    def _run_episodes(self) -> None:
        for instance_id in self.store.instances_with_inbox():
            # An episode may schedule activities or queue messages: take another pass.
            self.wake()
            try:
                self._episode(instance_id)
            except Exception as exc:
                log.exception("episode of %s failed", instance_id)
                self._fail_hard(instance_id, exc)

    def _episode(self, instance_id: str) -> None:
        inst = self.store.get_instance(instance_id)
        messages = self.store.inbox(instance_id)
        if not messages:
            return
        upto = messages[-1][0]
        if inst is None or inst.terminal:
            self.store.drop_inbox(instance_id, upto)
            return
        now = events.utcnow()
        new = [events.orchestrator_started(now)] + [event for _, event in messages]
        terminate = next((e for e in new if e["EventType"] == _TERMINATED), None)
        if terminate is not None:
            commit = self._terminated(inst, upto, now, terminate)
        else:
            commit = self._decide(inst, upto, now, new, self._replay(inst, new, now))
        self.store.commit_episode(commit, now)

    def _replay(self, inst: Instance, new: list[dict[str, Any]], now: datetime) -> Outcome:
        handle = self.functions.orchestrators.get(inst.name)
        if handle is None:
            return Outcome(done=True, error=f"The function '{inst.name}' doesn't exist.")
        old = self.store.history(inst.instance_id)
        body = context_json(inst.instance_id, inst.parent_instance_id, inst.input, old, new)
        try:
            return run_episode(handle, body, old, now)
        except UnsupportedAction as exc:
            return Outcome(done=True, error=str(exc))

    def _decide(self, inst: Instance, upto: int, now: datetime, new: list[dict[str, Any]],
                outcome: Outcome) -> EpisodeCommit:
        commit = EpisodeCommit(
            inst.instance_id, inst.execution_id, upto, list(new), "Running",
            custom_status=_dumps(outcome.custom_status))
        for work in outcome.work:
            self._schedule(inst, commit, work, now)
        commit.cancel_task_ids = list(outcome.cancelled)
        commit.events.append(events.orchestrator_completed(now))
        if outcome.continued:
            commit.restart_event = events.execution_started(
                now, inst.name, outcome.continue_input, inst.parent_instance_id)
        elif outcome.error is not None:
            message = f"Orchestrator function '{inst.name}' failed: {outcome.error}"
            commit.status, commit.output = "Failed", json.dumps(message)
            commit.events.append(events.execution_completed(now, "Failed", commit.output))
            commit.notify = self._to_parent(inst, events.sub_orchestration_failed(
                now, inst.parent_task_id or 0, message, outcome.error))
        elif outcome.done:
            commit.status, commit.output = "Completed", json.dumps(outcome.output)
            commit.events.append(events.execution_completed(now, "Completed", commit.output))
            commit.notify = self._to_parent(inst, events.sub_orchestration_completed(
                now, inst.parent_task_id or 0, commit.output))
        return commit

    def _schedule(self, inst: Instance, commit: EpisodeCommit, work: NewWork,
                  now: datetime) -> None:
        """Record one requested piece of work (history event + pending row/child)."""
        iid, eid = inst.instance_id, inst.execution_id
        if work.kind == "activity":
            commit.events.append(events.task_scheduled(now, work.task_id, work.name or "",
                                                       work.input))
            commit.work.append(WorkItem(iid, eid, work.task_id, "activity", work.name,
                                        work.input))
        elif work.kind == "timer":
            assert work.fire_at is not None
            commit.events.append(events.timer_created(now, work.task_id, work.fire_at))
            commit.work.append(WorkItem(iid, eid, work.task_id, "timer",
                                        fire_at=events.fmt(work.fire_at)))
        else:
            child_id = work.instance_id or f"{iid}:{work.task_id}"
            commit.events.append(events.sub_orchestration_created(
                now, work.task_id, work.name or "", child_id, work.input))
            existing = self.store.get_instance(child_id)
            if existing is not None and not existing.terminal:
                # DTFx refuses to start over a live instance; surface it as a failure.
                reason = f"An orchestration with instance id '{child_id}' is already running."
                commit.self_messages.append(
                    events.sub_orchestration_failed(now, work.task_id, reason, ""))
                return
            commit.children.append(NewInstance(
                child_id, work.name or "", work.input,
                events.execution_started(now, work.name or "", work.input, iid),
                iid, work.task_id, eid))

    def _terminated(self, inst: Instance, upto: int, now: datetime,
                    terminate: dict[str, Any]) -> EpisodeCommit:
        reason = terminate.get("Input")
        output = json.dumps(reason)
        history = [events.orchestrator_started(now), terminate,
                   events.execution_completed(now, "Terminated", output),
                   events.orchestrator_completed(now)]
        commit = EpisodeCommit(inst.instance_id, inst.execution_id, upto, history,
                               "Terminated", output=output, custom_status=inst.custom_status)
        commit.notify = self._to_parent(inst, events.sub_orchestration_failed(
            now, inst.parent_task_id or 0, f"Terminated: {reason}", ""))
        return commit

    @staticmethod
    def _to_parent(inst: Instance, event: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if inst.parent_instance_id is None:
            return None
        return inst.parent_instance_id, event

    def _fail_hard(self, instance_id: str, exc: Exception) -> None:
        """A devhost bug must not spin forever on the same inbox: fail the instance."""
        inst = self.store.get_instance(instance_id)
        messages = self.store.inbox(instance_id)
        if inst is None or not messages:
            return
        now = events.utcnow()
        outcome = Outcome(done=True, error=f"devhost internal error: {exc!r}")
        commit = self._decide(inst, messages[-1][0], now, [events.orchestrator_started(now)],
                              outcome)
        try:
            self.store.commit_episode(commit, now)
        except Exception:
            log.exception("could not fail %s; dropping its inbox", instance_id)
            self.store.drop_inbox(instance_id, messages[-1][0])


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


__all__ = ["DurableEngine", "InstanceExists", "UnknownOrchestrator"]


def _activity_span(name: str, trace_parent: str | None):
    """A span for one activity attempt, child of the orchestration's caller when known."""
    parent = extract_context({"traceparent": trace_parent}) if trace_parent else None
    return _tracer.start_as_current_span(f"activity {name}", context=parent)
