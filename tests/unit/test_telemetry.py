"""Telemetry: JSON logs carry the trace id; W3C context crosses a process boundary."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

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
