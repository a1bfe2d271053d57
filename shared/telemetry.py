"""Traces and structured logs for every MCPaaS process (issue 6, item 4).

Exporter choice, decided once per process by `configure_telemetry`:
- `APPLICATIONINSIGHTS_CONNECTION_STRING` set: Azure Monitor through
  `azure-monitor-opentelemetry` (https://learn.microsoft.com/azure/azure-monitor/app/opentelemetry-enable?tabs=python);
- else `OTEL_EXPORTER_OTLP_ENDPOINT` set: OTLP over HTTP;
- else spans are printed to the console when `MCPAAS_TELEMETRY_CONSOLE=true`;
- else spans are not recorded (sampler ALWAYS_OFF) but still carry ids, so logs have
  trace ids and the W3C context propagates (as not sampled: a downstream process
  that exports then drops them, ParentBased).
Logs are JSON lines (python-json-logger) carrying `trace_id` and `span_id` of the
current span. With Azure Monitor or OTLP, every gateway invocation is also an
OpenTelemetry log record named `ToolCalled` (`emit_tool_called`; FR-022, 004 G5): the
SIEM feed, with the request's trace and span ids; Azure Monitor files it under
customEvents (attribute `microsoft.custom_event.name`). Context crosses process boundaries as W3C `traceparent` headers
(`inject_headers` / `extract_context`), https://www.w3.org/TR/trace-context/.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import _logs as otel_logs
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.trace import Status, StatusCode
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.util.types import AnyValue
from pythonjsonlogger.json import JsonFormatter

_configured: str | None = None
TOOL_CALLED = "ToolCalled"
# the logger of `ToolCalled` records; None while no log exporter is configured
_tool_events: otel_logs.Logger | None = None


def export_tool_events(provider: otel_logs.LoggerProvider | None) -> None:
    """Emit `ToolCalled` records through `provider` from now on (None: stop emitting).
    `configure_telemetry` calls it with the exporting provider it sets up."""
    global _tool_events
    _tool_events = provider.get_logger("mcpaas.audit") if provider is not None else None


def emit_tool_called(record: Mapping[str, Any]) -> None:
    """One `ToolCalled` log record of an invocation document (`shared.audit.invocation`):
    attributes `server`, `tool` (absent outside `tools/call`), `method`, `actor`,
    `result`, `latency_ms`, `invocation_id`; trace and span ids come from the current
    span. Costs nothing while no log exporter is configured."""
    if _tool_events is None:
        return
    attributes: dict[str, AnyValue] = {
        key: record[key] for key in ("server", "tool", "method", "actor", "result", "latency_ms")
        if record.get(key) is not None}
    attributes["invocation_id"] = record["id"]
    attributes["microsoft.custom_event.name"] = TOOL_CALLED  # Azure Monitor: a customEvents row
    _tool_events.emit(event_name=TOOL_CALLED, body=TOOL_CALLED, attributes=attributes,
                      severity_number=otel_logs.SeverityNumber.INFO, severity_text="INFO")


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (hex; empty outside a span) to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        record.trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else ""
        record.span_id = format(span_context.span_id, "016x") if span_context.is_valid else ""
        return True


def current_trace_id() -> str:
    """The 32-hex-digit W3C trace id of the current span, or "" outside a valid span
    (https://www.w3.org/TR/trace-context/#trace-id)."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


def json_log_handler(stream=None) -> logging.Handler:
    """A handler writing JSON lines with time, level, logger, message, trace and span ids."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(trace_id)s %(span_id)s",
                                       rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    handler.addFilter(TraceContextFilter())
    return handler


def configure_telemetry(service_name: str, *, environ: Mapping[str, str] | None = None,
                        level: int = logging.INFO) -> str:
    """Set up tracing and JSON logging for this process; returns the exporter chosen.

    Returns ``azure-monitor``, ``otlp``, ``console`` or ``none``. Idempotent: a second
    call returns the first choice without reconfiguring.
    """
    global _configured
    if _configured is not None:
        return _configured
    env = os.environ if environ is None else environ
    resource = Resource.create({"service.name": service_name, "service.namespace": "mcpaas"})
    if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(connection_string=env["APPLICATIONINSIGHTS_CONNECTION_STRING"], resource=resource)
        export_tool_events(otel_logs.get_logger_provider())  # set up by configure_azure_monitor
        _configured = "azure-monitor"
    else:
        provider = TracerProvider(resource=resource)
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            logs = LoggerProvider(resource=resource)
            logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
            otel_logs.set_logger_provider(logs)
            export_tool_events(logs)
            _configured = "otlp"
        elif env.get("MCPAAS_TELEMETRY_CONSOLE", "").lower() == "true":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
            _configured = "console"
        else:
            # Nothing exports spans, so none is recorded: unsampled spans still get ids
            # (logs carry trace ids, the caller's trace id continues, children get
            # TRACEPARENT) at a fraction of a recorded span's cost per request.
            provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
            _configured = "none"
        trace.set_tracer_provider(provider)
    root = logging.getLogger()
    root.handlers = [json_log_handler()]
    root.setLevel(level)
    return _configured


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """`headers` plus the W3C trace context of the current span (`traceparent`, `tracestate`)."""
    carrier = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str]) -> otel_context.Context:
    """The trace context carried by incoming `headers` (case-insensitive keys)."""
    return propagate.extract({key.lower(): value for key, value in headers.items()})


# W3C trace context and baggage (the default propagators); ASGI names are lowercase
_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


class TraceMiddleware:
    """ASGI middleware: one server span per HTTP request, continuing the caller's trace.

    Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched;
    the span ends when the response has been sent.
    """

    def __init__(self, app, tracer_name: str = "mcpaas") -> None:
        self.app = app
        self._tracer = trace.get_tracer(tracer_name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # only the propagation headers: decoding every header costs on each request
        headers = {key.decode("latin-1"): value.decode("latin-1")
                   for key, value in scope.get("headers", []) if key in _PROPAGATION_HEADERS}
        # start_span/attach by hand rather than start_as_current_span: that nests two
        # generator-based context managers, a measurable cost on every gateway call
        span = self._tracer.start_span(f"{scope['method']} {scope['path']}",
                                       context=extract_context(headers), kind=trace.SpanKind.SERVER)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            span.end()


def child_trace_env() -> dict[str, str]:
    """`TRACEPARENT`/`TRACESTATE` of the current span for a child process's environment
    (the OpenTelemetry environment-variable carrier convention)."""
    return {key.upper(): value for key, value in inject_headers().items()
            if key in ("traceparent", "tracestate")}
