"""Every gateway invocation is also a `ToolCalled` OpenTelemetry log record, with the
request's trace and span ids: the SIEM feed (issue 10 item 6, FR-022). Exported here
through the SDK's in-memory exporter instead of Azure Monitor or OTLP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from shared.telemetry import TOOL_CALLED, export_tool_events

from tests.integration.gateway.authn import allowed_and_denied_calls, start_local

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def exported() -> Iterator[InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    export_tool_events(provider)
    try:
        yield exporter
    finally:
        export_tool_events(None)


async def test_each_invocation_is_a_tool_called_record_with_its_trace(make_gateway, exported) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    await allowed_and_denied_calls(auth, TRACE_ID)
    for _ in range(50):
        records = [item.log_record for item in exported.get_finished_logs()]
        calls = [r for r in records if r.attributes.get("method") == "tools/call"]
        if len(calls) == 2:
            break
        await asyncio.sleep(0.05)
    assert {r.event_name for r in records} == {TOOL_CALLED}
    by_tool = {r.attributes["tool"]: r for r in calls}
    assert dict(by_tool["echo"].attributes) | {"latency_ms": 0, "invocation_id": ""} == {
        "server": "echo", "tool": "echo", "method": "tools/call", "actor": "ann", "result": "200",
        "latency_ms": 0, "invocation_id": "", "microsoft.custom_event.name": TOOL_CALLED}
    assert by_tool["add"].attributes["result"] == "denied"
    assert all(r.attributes["latency_ms"] >= 0 for r in calls)
    assert {format(r.trace_id, "032x") for r in records} == {TRACE_ID} and all(r.span_id for r in records)
    for _ in range(50):  # the same records as the audit, which the store gets a little later
        stored = {doc["id"] for doc in gw.store.query("invocations", partition_key="echo")}
        if {r.attributes["invocation_id"] for r in calls} <= stored:
            break
        await asyncio.sleep(0.05)
    assert {r.attributes["invocation_id"] for r in calls} <= stored

