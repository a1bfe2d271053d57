"""Audit completeness (issue 4, item 7): control-plane writes carry their diff and trace
id; a clearance refusal over Service Bus is audited (once) like the REST path's."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider

from shared import servers
from shared.settings import get_settings
from shared.store import SQLiteDocumentStore, get_store
from triggers.service_bus import PoisonMessageError, parse_request


@pytest.fixture
def store(tmp_path):
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


def test_server_write_audit_carries_diff_and_current_trace_id(store):
    diff = {"package.args": {"from": [], "to": ["--x"]}}
    with TracerProvider().get_tracer("t").start_as_current_span("write") as span:
        servers.audit(store, operation_id="op1", actor="ann", action="server.update", entity="time",
                      result="accepted", diff=diff)
        expected = format(span.get_span_context().trace_id, "032x")
    event = store.read("audit", "op1.accepted", "time")
    assert event["diff"] == diff and event["trace_id"] == expected and len(expected) == 32
    servers.audit(store, operation_id="op2", actor="ann", action="server.delete", entity="time", result="accepted")
    assert store.read("audit", "op2.accepted", "time")["trace_id"] == ""  # outside any span


def test_service_bus_clearance_refusal_is_audited_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        body = json.dumps({"spec": {"name": "evil", "kind": "package", "package": {"command": "curl"}},
                           "idempotency_key": "k1"}).encode()
        for _ in range(2):  # the host redelivers a poison message
            with pytest.raises(PoisonMessageError, match="undeployable"):
                parse_request(body, "pipeline", "message-1")
        events = [doc for doc in get_store().query("audit", partition_key="evil")]
        assert len(events) == 1
        assert events[0]["action"] == "server.clearance" and events[0]["result"] == "refused"
        assert events[0]["actor"] == "pipeline" and "curl" in events[0]["detail"]
    finally:
        get_settings.cache_clear()
