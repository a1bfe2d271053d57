"""Telemetry: JSON logs carry the trace id; W3C context crosses a process boundary."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from shared.telemetry import extract_context, inject_headers, json_log_handler

tracer = TracerProvider().get_tracer("test")


def test_log_lines_are_json_with_the_current_trace_id():
    stream = io.StringIO()
    logger = logging.getLogger("mcpaas.test.telemetry")
    logger.handlers, logger.propagate = [json_log_handler(stream)], False
    logger.setLevel(logging.INFO)
    with tracer.start_as_current_span("request") as span:
        logger.info("deploying %s", "echo")
    logger.info("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "deploying echo" and inside["level"] == "INFO"
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert outside["trace_id"] == ""


def test_trace_context_round_trips_through_headers():
    with tracer.start_as_current_span("caller") as span:
        headers = inject_headers({"Accept": "application/json"})
    assert headers["Accept"] == "application/json" and headers["traceparent"].startswith("00-")
    remote = trace.get_current_span(extract_context({"TraceParent": headers["traceparent"]}))
    assert remote.get_span_context().trace_id == span.get_span_context().trace_id


def test_unexported_spans_are_not_recorded_but_keep_ids_and_the_callers_trace():
    quiet = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        headers = inject_headers()
    with quiet.start_as_current_span("request", context=extract_context(headers)) as span:
        assert not span.is_recording()
        assert span.get_span_context().trace_id == caller.get_span_context().trace_id
        flags = int(inject_headers()["traceparent"].rsplit("-", 1)[1], 16)
        assert flags & 1 == 0  # propagated as not sampled
    with quiet.start_as_current_span("root") as root:
        assert root.get_span_context().is_valid  # logs still get a trace id
